"""The yearly cycle for the HCMC districts catalogue: self-assessment, verification with an adjustment,
evidence request and answer, closing, publication, a late submission that does not move the published
ranking, a restatement that does and lists the moved ranks; and every role check on the way.

The HCMC district level ends on 2025-06-30, so the cycle is the 2024 assessment (and 2023 "last year").
Every one of the 22 registered units is ranked: the 19 that report nothing rank last with 0."""

from __future__ import annotations

import csv
import io
from typing import Any

import jsonschema
import pytest

from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e
SCOPE_BODY = {"catalogue_id": "hcmc-dti-districts", "catalogue_version": "1.0", "period": 2024}
SCOPE = {"catalogue": "hcmc-dti-districts", "version": "1.0", "period": 2024}
UNITS = 22  # Thủ Đức city, 16 quận and 5 huyện (bundled unit list hcmc-districts, valid on 2024-12-31)
SCORED_COMPONENTS = 51  # the scored leaves of Appendix II: each unit needs a verification decision on each
INCOMPLETE = "Công bố kết quả các đơn vị đã được thẩm định; các đơn vị còn lại bổ sung sau"
EVIDENCE = [{"title": "Quyết định thành lập Ban chỉ đạo", "number": "123/QĐ-UBND", "date": "2025-02-01"}]


def submit(system: RunningSystem, unit: str, indicator: str, inputs: dict[str, Any], key: str, **extra: Any) -> Any:
    body = {**SCOPE_BODY, "unit_id": unit, "indicator": indicator, "inputs": inputs, "evidence": EVIDENCE, **extra}
    return system.post(unit, "/v1/measurements", body, key)


def verify(system: RunningSystem, unit: str, indicator: str, key: str, **decision: Any) -> Any:
    body = {**SCOPE_BODY, "unit_id": unit, "indicator": indicator, **decision}
    return system.post("evaluator", "/v1/verifications", body, key)


def rankings(system: RunningSystem, **params: Any) -> dict[str, Any]:
    response = system.reporting.get("/v1/rankings", params={**SCOPE, **params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_the_yearly_cycle_end_to_end(running: RunningSystem) -> None:
    system = running
    last_year = {**SCOPE_BODY, "period": 2023, "unit_id": "quan-1", "indicator": "1.1", "inputs": {"a": "deputy"}}
    assert system.post("quan-1", "/v1/measurements", last_year, "cycle-2023").status_code == 201  # 5 points in 2023
    # 1. Self-assessment ("Tự đánh giá") with evidence.
    for unit, indicator, inputs in [
        ("quan-1", "1.1", {"a": "secretary_or_chair"}),  # 10
        ("quan-1", "3.3", {"a": "0.55"}),  # 15
        ("quan-3", "1.1", {"a": "secretary_or_chair"}),  # 10
        ("quan-3", "3.3", {"a": "0.81"}),  # 30 self-assessed
        ("thu-duc", "1.1", {"a": "deputy"}),  # 5
        ("thu-duc", "3.3", {"a": "0.9"}),  # 30
    ]:
        assert submit(system, unit, indicator, inputs, f"cycle-{unit}-{indicator}").status_code == 201
    # Role checks: who may do what.
    assert verify(system, "quan-1", "1.1", "role-1", decision="accepted").status_code == 201
    forbidden = [
        system.post(
            "quan-1",
            "/v1/verifications",
            {**SCOPE_BODY, "unit_id": "quan-1", "indicator": "1.1", "decision": "accepted"},
            "r1",
        ),
        system.post("quan-1", "/v1/publications", SCOPE_BODY, "r-publish-1"),
        system.post("evaluator", "/v1/publications", SCOPE_BODY, "r-publish-2"),
        system.post(
            "approver",
            "/v1/verifications",
            {**SCOPE_BODY, "unit_id": "quan-1", "indicator": "1.1", "decision": "accepted"},
            "r2",
        ),
        system.post(
            "auditor",
            "/v1/measurements",
            {**SCOPE_BODY, "unit_id": "quan-1", "indicator": "1.1", "inputs": {"a": "deputy"}},
            "r3",
        ),
        system.post("quan-1", "/v1/periods/close", SCOPE_BODY, "r-close"),
        system.post(
            "evaluator",
            "/v1/measurements",
            {**SCOPE_BODY, "unit_id": "quan-1", "indicator": "1.1", "inputs": {"a": "deputy"}},
            "r4",
        ),
        system.post(
            "quan-1",
            "/v1/evidence-requests",
            {**SCOPE_BODY, "unit_id": "quan-3", "indicator": "1.1", "message": "xin minh chứng"},
            "r-ask",
        ),
        system.post(
            "quan-1", "/v1/context", {**SCOPE_BODY, "unit_id": "quan-3", "values": {"population": 1}}, "r-context"
        ),
        # a unit writes its self-assessment only: the verified value is the evaluator's
        system.post(
            "quan-1",
            "/v1/measurements",
            {**SCOPE_BODY, "unit_id": "quan-1", "indicator": "1.1", "inputs": {"a": "deputy"}, "stage": "verification"},
            "r5",
        ),
    ]
    assert [response.status_code for response in forbidden] == [403] * len(forbidden)
    assert (
        system.ingest.get("/v1/events", headers={"Authorization": f"Bearer {system.keys['quan-1']}"}).status_code == 403
    )
    assert (
        system.ingest.get("/v1/events", headers={"Authorization": f"Bearer {system.keys['auditor']}"}).status_code
        == 200
    )

    # 2. Verification ("Kết quả đánh giá"): accept, or replace with a reason.
    assert (
        verify(system, "quan-3", "3.3", "v-q3-33", decision="adjusted", inputs={"a": "0.6"}).status_code == 422
    )  # no reason
    adjusted = verify(
        system,
        "quan-3",
        "3.3",
        "v-q3-33",
        decision="adjusted",
        inputs={"a": "0.6"},
        reason="Minh chứng chỉ cho thấy 60% ứng dụng",
    )
    assert adjusted.status_code == 201, adjusted.text
    for unit, indicator in [("quan-1", "3.3"), ("quan-3", "1.1"), ("thu-duc", "1.1"), ("thu-duc", "3.3")]:
        assert verify(system, unit, indicator, f"v-{unit}-{indicator}", decision="accepted").status_code == 201

    # 3. Evidence request and the unit's answer, linked to it.
    request = system.post(
        "evaluator",
        "/v1/evidence-requests",
        {**SCOPE_BODY, "unit_id": "thu-duc", "indicator": "3.3", "message": "Đề nghị bổ sung danh sách ứng dụng"},
        "cycle-ask",
    )
    assert request.status_code == 201
    answer = submit(system, "thu-duc", "3.3", {"a": "0.9"}, "cycle-answer", responds_to=request.json()["event_id"])
    assert answer.status_code == 201, answer.text
    assert (
        submit(
            system, "thu-duc", "3.3", {"a": "0.9"}, "cycle-bad-answer", responds_to=adjusted.json()["event_id"]
        ).status_code
        == 422
    )

    # General information ("Thông tin chung").
    assert (
        system.post(
            "quan-1",
            "/v1/context",
            {**SCOPE_BODY, "unit_id": "quan-1", "values": {"population": 142625, "civil_servants": 320}},
            "cycle-context",
        ).status_code
        == 201
    )
    bad_context = system.post(
        "quan-1", "/v1/context", {**SCOPE_BODY, "unit_id": "quan-1", "values": {"mayor": "x"}}, "cycle-bad-context"
    )
    assert bad_context.status_code == 422 and bad_context.json()["errors"][0]["field"] == "values.mayor"

    # 4. Close the period: a late submission is refused with a clear error.
    assert (
        system.post(
            "evaluator", "/v1/periods/close", {**SCOPE_BODY, "reason": "Hết hạn tự đánh giá"}, "cycle-close"
        ).status_code
        == 201
    )
    late = submit(system, "quan-1", "1.1", {"a": "deputy"}, "cycle-late-1")
    assert late.status_code == 409 and late.json()["errors"] == [
        {"field": "period", "message": "closed for submissions"}
    ]

    # 5. Publication freezes the verified ranking. Only 3 of the 22 units have verification decisions
    # (2 components each of 51), so the approver states why it publishes anyway; what is missing is recorded.
    published = system.post("approver", "/v1/publications", {**SCOPE_BODY, "incomplete_reason": INCOMPLETE}, "pub")
    assert published.status_code == 201, published.text
    assert published.json()["replayed"] is False
    publication_id = published.json()["publication"]["publication_id"]
    recorded = published.json()["publication"]
    assert recorded["incomplete_reason"] == INCOMPLETE
    missing = {entry["unit_id"]: entry for entry in recorded["missing"]}
    assert len(missing) == UNITS  # every unit lacks at least one decision
    # thu-duc, quan-1 and quan-3 have decisions on 1.1 and 3.3: 51 − 2 = 49 missing; the 19 silent units 51
    assert {unit: entry["count"] for unit, entry in missing.items() if entry["count"] != SCORED_COMPONENTS} == {
        "thu-duc": SCORED_COMPONENTS - 2,
        "quan-1": SCORED_COMPONENTS - 2,
        "quan-3": SCORED_COMPONENTS - 2,
    }
    assert missing["quan-1"]["first"][:3] == ["1.2", "1.3", "1.4"]  # 1.1 was verified, so it is not listed
    assert missing["can-gio"]["first"][:2] == ["1.1", "1.2"]
    system.wait_for(
        lambda: system.reporting.get("/v1/rankings", params={**SCOPE, "stage": "published"}).status_code == 200
    )
    frozen = rankings(system, stage="published")
    # verified: quan-1 10 + 15 = 25; quan-3 10 + 15 (adjusted from 30) = 25; thu-duc 5 + 30 = 35;
    # the other 19 registered units have no data: 0, tied 4th of 22
    assert [(row["rank_label"], row["unit_id"], row["total"]) for row in frozen["rankings"][:3]] == [
        ("1/22", "thu-duc", "35.00"),
        ("2/22", "quan-1", "25.00"),
        ("2/22", "quan-3", "25.00"),
    ]
    assert len(frozen["rankings"]) == UNITS
    assert {(row["rank_label"], row["total"]) for row in frozen["rankings"][3:]} == {("4/22", "0.00")}
    assert frozen["rankings"][0]["unit_name_vi"] == "Thành phố Thủ Đức"
    assert (frozen["incomplete_reason"], len(frozen["missing"])) == (INCOMPLETE, UNITS)
    assert (frozen["publication_id"], frozen["published_by"], frozen["published_stage"]) == (
        publication_id,
        "ubnd-approver",
        "verification",
    )

    # Both values side by side, with the gap and the evaluator's reason.
    card = system.reporting.get("/v1/units/quan-3/scorecard", params={**SCOPE, "stage": "verification"}).json()
    component = next(
        child
        for pillar in card["pillars"]
        if pillar["code"] == "3"
        for child in pillar["children"]
        if child["code"] == "3.3"
    )
    assert (component["self_assessed_points"], component["verified_points"], component["gap"]) == (
        "30.00",
        "15.00",
        "-15.00",
    )
    assert component["verification"]["decision"] == "adjusted"
    assert component["verification"]["reason"] == "Minh chứng chỉ cho thấy 60% ứng dụng"
    assert (component["points_missing"], component["max_points"]) == ("15.00", "30")
    information = system.reporting.get("/v1/units/quan-1/scorecard", params=SCOPE).json()["general_information"]
    assert information == {"population": "142625", "civil_servants": "320"}

    # 6. A reopened unit's late submission does not move what was published.
    assert (
        system.post(
            "evaluator",
            "/v1/periods/reopen",
            {**SCOPE_BODY, "unit_id": "quan-1", "reason": "Gia hạn theo công văn 45"},
            "cycle-reopen",
        ).status_code
        == 201
    )
    assert submit(system, "quan-1", "3.3", {"a": "0.95"}, "cycle-late-2").status_code == 201  # 30
    assert submit(system, "quan-3", "3.3", {"a": "0.95"}, "cycle-late-3").status_code == 409  # quan-3 was not reopened
    late_verified = verify(system, "quan-1", "3.3", "v-late", decision="accepted")
    assert late_verified.status_code == 201
    live = lambda: rankings(system, stage="verification")  # noqa: E731
    system.wait_for(lambda: live()["as_of_sequence"] >= late_verified.json()["sequence"])
    leader = live()["rankings"][0]
    assert (leader["unit_id"], leader["total"]) == ("quan-1", "40.00")
    assert rankings(system, stage="published")["rankings"] == frozen["rankings"]

    # 7. Publishing again must be a restatement naming what it replaces; it lists every rank that moved.
    # (a new Idempotency-Key: the first one with this body would replay the first publication)
    unnamed = system.post("approver", "/v1/publications", {**SCOPE_BODY, "incomplete_reason": INCOMPLETE}, "pub-again")
    assert unnamed.status_code == 409 and [error["field"] for error in unnamed.json()["errors"]] == ["replaces"]
    restated = system.post(
        "approver",
        "/v1/publications",
        {
            **SCOPE_BODY,
            "replaces": publication_id,
            "reason": "Bổ sung kết quả Quận 1 sau gia hạn",
            "incomplete_reason": INCOMPLETE,
        },
        "pub-restated",
    )
    assert restated.status_code == 201, restated.text
    assert restated.json()["publication"]["ranking"] == []  # ingest does not score: scoring freezes it at the cut
    # quan-1's 3.3 was decided again (accepted); the count of what is missing is unchanged
    assert {entry["unit_id"]: entry["count"] for entry in restated.json()["publication"]["missing"]}["quan-1"] == (
        SCORED_COMPONENTS - 2
    )
    restatement_id = restated.json()["publication"]["publication_id"]
    system.wait_for(lambda: rankings(system, stage="published")["publication_id"] == restatement_id)
    assert rankings(system, stage="published")["replaces"] == publication_id
    # the 19 units without data stay tied 4th of 22: only the three reporting units move
    assert rankings(system, stage="published")["moved"] == [
        {"unit_id": "quan-1", "from_rank": "2/22", "to_rank": "1/22"},
        {"unit_id": "quan-3", "from_rank": "2/22", "to_rank": "3/22"},
        {"unit_id": "thu-duc", "from_rank": "1/22", "to_rank": "2/22"},
    ]
    # frozen at the cut: exactly the verified ranking as of the sequence before the publication
    restated_ranking = rankings(system, stage="published")
    at_cut = rankings(system, stage="verification", as_of=str(restated_ranking["as_of_sequence"]))
    assert [(row["unit_id"], row["rank_label"], row["total"]) for row in restated_ranking["rankings"]] == [
        (row["unit_id"], row["rank_label"], row["total"]) for row in at_cut["rankings"]
    ]
    original = rankings(system, stage="published", publication=publication_id)
    assert (original["rankings"], original["restated_by"]) == (frozen["rankings"], restatement_id)

    # Per-pillar rankings and the change since last year.
    by_pillar_3 = rankings(system, stage="verification", pillar="3")
    assert [(row["rank_label"], row["unit_id"], row["pillars"]["3"]) for row in by_pillar_3["rankings"][:3]] == [
        ("1/22", "quan-1", "30.00"),
        ("1/22", "thu-duc", "30.00"),
        ("3/22", "quan-3", "15.00"),
    ]
    assert {(row["rank_label"], row["pillars"]["3"], row["status"]) for row in by_pillar_3["rankings"][3:]} == {
        ("4/22", "0.00", "missing")
    }
    own = system.reporting.get("/v1/units/quan-1/scorecard", params=SCOPE).json()
    head = next(
        child
        for pillar in own["pillars"]
        if pillar["code"] == "1"
        for child in pillar["children"]
        if child["code"] == "1.1"
    )
    assert (head["previous_period_points"], head["points"], head["change"]) == ("5.00", "10.00", "5.00")
    assert head["lead_agency"] is None or isinstance(head["lead_agency"], str)
    sheet = system.reporting.get("/v1/units/quan-1/scorecard.csv", params=SCOPE)
    lines = list(csv.reader(io.StringIO(sheet.text.lstrip("\ufeff"))))
    assert lines[0][:4] == ["Mã (Code)", "Chỉ số (Indicator)", "Điểm tối đa (Max)", "Điểm (Points)"]
    assert [line[0] for line in lines[1:4]] == ["1", "1.1", "1.2"]
    assert lines[-2][1:4] == ["Tổng (Total)", "660", "40.00"]
    assert lines[-1][1:4] == ["Đơn vị (Unit)", "quan-1", "Quận 1"]

    # Exports and the audit trail.
    exported = system.reporting.get("/v1/rankings.csv", params={**SCOPE, "stage": "published"})
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    # the unit's id has its own column; the next one is its Vietnamese name
    assert rows[0][:4] == ["Hạng (Rank)", "Mã đơn vị (Unit id)", "Đơn vị (Unit)", "Tổng điểm (Total)"]
    assert [row[:4] for row in rows[1:4]] == [
        ["1/22", "quan-1", "Quận 1", "40.00"],
        ["2/22", "thu-duc", "Thành phố Thủ Đức", "35.00"],
        ["3/22", "quan-3", "Quận 3", "25.00"],
    ]
    assert len(rows) == 1 + UNITS and {(row[0], row[3]) for row in rows[4:]} == {("4/22", "0.00")}
    history = system.reporting.get("/v1/units/thu-duc/history", params={**SCOPE, "indicator": "3.3"}).json()
    kinds = [(entry["type"].split(".")[2], entry.get("stage"), entry["by"]) for entry in history]
    assert kinds[:4] == [
        ("measurement", "self_assessment", "thu-duc"),
        ("measurement", "verification", "so-tttt"),
        ("evidence", None, "so-tttt"),
        ("measurement", "self_assessment", "thu-duc"),
    ]
    assert history[3]["responds_to"] == request.json()["event_id"]
    assert {"period", "result"} <= {entry["type"].split(".")[2] for entry in history}
    # Every event the cycle emitted is on the feed and valid against its published schema.
    auditor = {"Authorization": f"Bearer {system.keys['auditor']}"}
    events = system.ingest.get("/v1/events", params={"limit": 1000}, headers=auditor).json()["events"]
    schemas = {
        name: system.ingest.get(f"/v1/schemas/{name}").json() for name in system.ingest.get("/v1/schemas").json()
    }
    for event in events:
        jsonschema.validate(event, schemas[event["type"]])
    assert {event["type"] for event in events} >= {
        "vn.kpi.units.registered.v1",
        "vn.kpi.measurement.recorded.v1",
        "vn.kpi.evidence.requested.v1",
        "vn.kpi.period.closed.v1",
        "vn.kpi.period.reopened.v1",
        "vn.kpi.context.reported.v1",
        "vn.kpi.result.published.v1",
    }
    # the whole cycle's log verifies: every hash, every stored column, the closed periods and reopened units
    admin = {"Authorization": f"Bearer {system.keys['admin']}"}
    verified = system.ingest.get("/v1/audit/verify", headers=admin).json()
    assert (verified["ok"], verified["first_break"]) == (True, None)
