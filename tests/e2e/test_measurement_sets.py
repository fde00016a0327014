"""Measurement sets over the running system (issue 13): a district's filled XLSX template in one
request scores and ranks exactly as the same rows posted one by one; a dry run stores nothing; a
file with three bad rows is refused whole, and in partial mode stores the others naming the three;
re-importing stores nothing; a changed value is a correction; the audit chain stays whole."""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import httpx
import openpyxl
import pytest

from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.set_files import category_labels, scored_components
from kpi_ingest.adapters.catalogue_files import bundled_catalogue_documents
from tests.e2e.conftest import RunningSystem
from tests.reproduce import Unreachable, inputs_for

pytestmark = pytest.mark.e2e
SCOPE = {"catalogue_id": "hcmc-dti-districts", "catalogue_version": "1.0", "period": 2024}
QUERY = {"catalogue": "hcmc-dti-districts", "version": "1.0", "period": 2024}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def districts() -> Catalogue:
    document = next(d for d in bundled_catalogue_documents() if d["id"] == "hcmc-dti-districts")
    return parse_catalogue(document)


def year_of_inputs(catalogue: Catalogue) -> dict[str, dict[str, Any]]:
    """Inputs for every scored component, spread over each rule's scale (0, ¼ … the max)."""
    found = {}
    for index, node in enumerate(scored_components(catalogue)):
        assert node.max_points is not None
        for share in (Fraction(index % 5, 4), Fraction(1), Fraction(0)):
            try:
                found[node.code] = inputs_for(node, Fraction(node.max_points) * share).inputs
                break
            except Unreachable:
                continue
    return found


def as_typed(value: Any) -> str:
    return "Có" if value is True else "Không" if value is False else str(value)


def filled_template(running: RunningSystem, unit: str, inputs: dict[str, dict[str, Any]]) -> bytes:
    """The XLSX template of the unit, filled as an agency would: Vietnamese labels for categories,
    Có/Không for yes/no, shares with the decimal comma."""
    template = running.ingest.get(
        "/v1/catalogues/hcmc-dti-districts/versions/1.0/template.xlsx", params={"unit": unit, "period": 2024}
    )
    assert template.status_code == 200, template.text
    assert template.headers["content-type"] == XLSX
    workbook = openpyxl.load_workbook(io.BytesIO(template.content))
    sheet = workbook.active
    assert sheet is not None
    header = [str(cell.value) for cell in sheet[1]]
    column = {name.rsplit("(", 1)[-1].rstrip(")"): index for index, name in enumerate(header)}
    nodes = {node.code: node for node in districts().nodes}
    for row in sheet.iter_rows(min_row=2):
        code = str(row[column["indicator"]].value)
        node = nodes[code]
        for name, value in inputs.get(code, {}).items():
            spec = node.input_spec(name)
            assert spec is not None
            if spec.type == "category":
                value = category_labels(spec, node.rule)[value]
            elif spec.type == "percent":
                value = str(value).replace(".", ",")
            row[column[name]].value = as_typed(value) if spec.type in ("boolean", "category", "percent") else value
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def post_set(
    running: RunningSystem, key: str, content: bytes | dict[str, Any], idempotency_key: str, **params: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {running.keys[key]}", "Idempotency-Key": idempotency_key}
    if isinstance(content, dict):
        return running.ingest.post("/v1/measurement-sets", json=content, headers=headers, params=params)
    kind = XLSX if content.startswith(b"PK") else "text/csv"
    return running.ingest.post(
        "/v1/measurement-sets", content=content, headers={**headers, "content-type": kind}, params=params
    )


def head(running: RunningSystem) -> int:
    verified = running.ingest.get("/v1/audit/verify", headers={"Authorization": f"Bearer {running.keys['auditor']}"})
    assert verified.status_code == 200 and verified.json()["ok"], verified.text
    return int(verified.json()["head_sequence"])


def points_by_code(running: RunningSystem, unit: str) -> dict[str, Any]:
    card = running.reporting.get(f"/v1/units/{unit}/scorecard", params=QUERY).json()
    found: dict[str, Any] = {}
    pending = list(card["pillars"])
    while pending:
        node = pending.pop()
        found[node["code"]] = node.get("points")
        pending.extend(node.get("children", []))
    return found


def test_a_filled_xlsx_template_ranks_as_the_same_rows_posted_one_by_one(running: RunningSystem) -> None:
    inputs = year_of_inputs(districts())
    assert len(inputs) == 51
    last = 0
    for code, values in inputs.items():
        body = {**SCOPE, "unit_id": "quan-1", "indicator": code, "inputs": values}
        posted = running.post_measurement("quan-1", body, f"single-{code}")
        assert posted.status_code == 201, posted.text
        last = posted.json()["sequence"]
    filled = filled_template(running, "quan-3", inputs)
    before = head(running)
    dry = post_set(running, "quan-3", filled, "quan-3-dry", dryRun="true")
    assert dry.status_code == 200, dry.text
    assert (dry.json()["imported"], dry.json()["refused"], dry.json()["stored"]) == (51, 0, False)
    assert head(running) == before  # the dry run stored nothing

    imported = post_set(running, "quan-3", filled, "quan-3-year")
    assert imported.status_code == 201, imported.text
    summary = imported.json()
    assert (summary["imported"], summary["replaced"], summary["unchanged"], summary["refused"]) == (51, 0, 0, 0)
    assert summary["last_sequence"] - summary["first_sequence"] == 50
    assert head(running) == before + 51  # each row its own event, and the chain verifies

    rankings = running.wait_until_projected(max(last, summary["last_sequence"]), QUERY)
    rows = {row["unit_id"]: row for row in rankings["rankings"]}
    assert rows["quan-1"]["total"] == rows["quan-3"]["total"] != "0.00"
    assert rows["quan-1"]["rank_label"] == rows["quan-3"]["rank_label"]
    assert points_by_code(running, "quan-1") == points_by_code(running, "quan-3")

    # the same file again, under a new key: nothing changes, nothing is stored, and it says so
    again = post_set(running, "quan-3", filled, "quan-3-year-again")
    assert again.status_code == 200, again.text
    assert (again.json()["unchanged"], again.json()["imported"], again.json()["stored"]) == (51, 0, False)
    # under the same key: the first answer, replayed
    replay = post_set(running, "quan-3", filled, "quan-3-year")
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["set_id"] == summary["set_id"]
    assert head(running) == before + 51


def csv_of(rows: list[dict[str, Any]]) -> bytes:
    lines = ["unit_id;indicator;a;b;c;d"]
    lines += [";".join(str(row.get(name, "")) for name in ("unit_id", "indicator", "a", "b", "c", "d")) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def test_three_bad_rows_refuse_the_file_and_partial_mode_stores_the_rest(running: RunningSystem) -> None:
    rows = [
        {"unit_id": "thu-duc", "indicator": "1.1", "a": "Trưởng ban là Bí thư/Chủ tịch Quận/Huyện/Thành phố"},
        {"unit_id": "thu-duc", "indicator": "3.3", "a": "81%"},
        {"unit_id": "thu-duc", "indicator": "3.4", "a": 9, "b": 7, "c": 3, "d": 6},
        {"unit_id": "thu-duc", "indicator": "3.3x", "a": "1"},  # row 5: no such indicator
        {"unit_id": "thu-duc", "indicator": "8.5", "a": "-2"},  # row 6: a negative count
        {"unit_id": "thu-duc", "indicator": "5.1", "a": "12"},
        {"unit_id": "thu-duc", "indicator": "1.1", "a": "deputy"},  # row 8: 1.1 again
    ]
    content = csv_of(rows)
    before = head(running)
    refused = post_set(running, "thu-duc", content, "thu-duc-atomic", **SCOPE)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"].endswith("/invalid-measurement"), problem
    assert {error["row"] for error in problem["errors"]} == {5, 6, 8}
    assert {(error["row"], error["field"]) for error in problem["errors"]} == {
        (5, "indicator"),
        (6, "inputs.a"),
        (8, "indicator"),
    }
    assert problem["summary"]["refused"] == 3 and problem["summary"]["stored"] is False
    assert head(running) == before  # all rows or none

    partial = post_set(running, "thu-duc", content, "thu-duc-partial", mode="partial", **SCOPE)
    assert partial.status_code == 201, partial.text
    summary = partial.json()
    assert (summary["imported"], summary["refused"]) == (4, 3)
    assert {error["row"] for error in summary["errors"]} == {5, 6, 8}
    assert head(running) == before + 4

    # a changed value is a correction, exactly as a single POST would record it
    corrected = csv_of([{"unit_id": "thu-duc", "indicator": "3.3", "a": "0,49"}, rows[0]])
    changed = post_set(running, "thu-duc", corrected, "thu-duc-correction", **SCOPE)
    assert changed.status_code == 201, changed.text
    assert (changed.json()["replaced"], changed.json()["unchanged"]) == (1, 1)
    events = running.ingest.get(
        "/v1/events",
        params={"after": before, "unit": "thu-duc"},
        headers={"Authorization": f"Bearer {running.keys['auditor']}"},
    ).json()["events"]
    latest = [event for event in events if event["subject"].endswith("/thu-duc/3.3")]
    assert [event["data"]["inputs"]["a"] for event in latest] == ["0.81", "0.49"]
    assert {event["type"] for event in events} == {"vn.kpi.measurement.recorded.v1"}


def test_a_set_is_held_to_the_key_and_the_rules_of_a_single_measurement(running: RunningSystem) -> None:
    rows = [{"unit_id": "quan-1", "indicator": "8.5", "inputs": {"a": 3}}]
    other = {**SCOPE, "rows": [*rows, {"unit_id": "binh-chanh", "indicator": "8.5", "inputs": {"a": 3}}]}
    forbidden = post_set(running, "quan-1", other, "q1-other-unit")
    assert forbidden.status_code == 403, forbidden.text
    assert forbidden.json()["errors"][0]["field"] == "unit_id"
    outside = post_set(running, "any-unit", {**SCOPE, "rows": [{"unit_id": "gia-lai", "indicator": "8.5"}]}, "k1")
    assert outside.status_code == 422, outside.text
    assert outside.json()["errors"][0] == {
        "row": 1,
        "field": "unit_id",
        "message": outside.json()["errors"][0]["message"],
    }
    no_key = running.ingest.post("/v1/measurement-sets", json={**SCOPE, "rows": rows})
    assert no_key.status_code == 401
    no_idempotency = running.ingest.post(
        "/v1/measurement-sets",
        json={**SCOPE, "rows": rows},
        headers={"Authorization": f"Bearer {running.keys['quan-1']}"},
    )
    assert no_idempotency.status_code == 400
    unreadable = post_set(running, "quan-1", b"\xff\xfe not a table", "q1-garbage")
    assert unreadable.status_code == 422, unreadable.text
    repeated = running.ingest.post(
        "/v1/measurement-sets",
        content=b'{"catalogue_id":"hcmc-dti-districts","catalogue_id":"x","catalogue_version":"1.0","period":2024,"rows":[]}',
        headers={
            "Authorization": f"Bearer {running.keys['quan-1']}",
            "Idempotency-Key": "q1-repeated",
            "content-type": "application/json",
        },
    )
    assert repeated.status_code == 422 and repeated.json()["errors"][0]["field"] == "catalogue_id"


def test_an_evaluator_accepts_a_whole_self_assessment_except_listed_adjustments(running: RunningSystem) -> None:
    rows = [
        {"unit_id": "quan-4", "indicator": "3.3", "inputs": {"a": "0.9"}},
        {"unit_id": "quan-4", "indicator": "8.5", "inputs": {"a": 12}},
        {"unit_id": "quan-4", "indicator": "1.1", "inputs": {"a": "deputy"}},
    ]
    assert post_set(running, "any-unit", {**SCOPE, "rows": rows}, "quan-4-year").status_code == 201
    body = {**SCOPE, "unit_id": "quan-4"}
    adjustment = {"indicator": "3.3", "inputs": {"a": "0.6"}, "reason": "Minh chứng chỉ cho thấy 60%"}
    headers = {"Authorization": f"Bearer {running.keys['evaluator']}"}

    def verify(payload: dict[str, Any], key: str) -> httpx.Response:
        return running.ingest.post("/v1/verification-sets", json=payload, headers={**headers, "Idempotency-Key": key})

    without_reason = verify({**body, "adjustments": [{"indicator": "3.3", "inputs": {"a": "0.6"}}]}, "v-no-reason")
    assert without_reason.status_code == 422
    verified = verify({**body, "adjustments": [adjustment]}, "v-quan-4")
    assert verified.status_code == 201, verified.text
    assert (verified.json()["accepted"], verified.json()["adjusted"]) == (2, 1)
    scope = {**QUERY, "stage": "verification"}
    running.wait_until_projected(verified.json()["last_sequence"], scope)
    card = running.reporting.get("/v1/units/quan-4/scorecard", params=scope).json()
    points = {node["code"]: node.get("points") for pillar in card["pillars"] for node in pillar.get("children", [])}
    assert points["3.3"] == "15.00"  # 60 %: 50–80 % gives 15 of 30, as verified; self-assessed 90 % gave 30
    # accepting everything again would replace the adjustment silently: refused, naming it
    again = verify(body, "v-quan-4-again")
    assert again.status_code == 422, again.text
    assert again.json()["errors"][0]["field"] == "accepted.3.3"
    assert again.json()["summary"]["unchanged"] == 2
    forbidden = running.ingest.post(
        "/v1/verification-sets",
        json=body,
        headers={"Authorization": f"Bearer {running.keys['quan-1']}", "Idempotency-Key": "v-by-reporter"},
    )
    assert forbidden.status_code == 403


def test_a_file_uploaded_as_a_multipart_form_is_read_like_a_body(running: RunningSystem) -> None:
    content = b"unit_id,indicator,a\nquan-8,8.5,4\n"
    uploaded = running.ingest.post(
        "/v1/measurement-sets",
        files={"file": ("quan-8.csv", content, "text/csv")},
        data={"catalogue_id": "hcmc-dti-districts", "catalogue_version": "1.0", "period": "2024"},
        headers={"Authorization": f"Bearer {running.keys['any-unit']}", "Idempotency-Key": "quan-8-form"},
    )
    assert uploaded.status_code == 201, uploaded.text
    assert (uploaded.json()["imported"], uploaded.json()["rows"]) == (1, 1)
    missing = running.ingest.post(
        "/v1/measurement-sets",
        files={"other": ("x.csv", content, "text/csv")},
        headers={"Authorization": f"Bearer {running.keys['any-unit']}", "Idempotency-Key": "quan-8-no-file"},
    )
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "file"
