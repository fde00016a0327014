"""The whole path over HTTP: measurement in, event stored and streamed, score out, ranking served."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from tests.conftest import fixture_catalogue
from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e
SCOPE = {"catalogue": "mini-dti", "version": "1.0", "period": 2024}
PROVINCES_2024 = 63  # mini-dti ranks the peer group provinces: the 63 units valid on 2024-12-31
BUNDLED_UNIT_LISTS = 5  # ingest registers each bundled unit list as an event before the catalogues


def body(unit: str, indicator: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "catalogue_id": "mini-dti",
        "catalogue_version": "1.0",
        "period": 2024,
        "unit_id": unit,
        "indicator": indicator,
        "inputs": inputs,
        "evidence": [{"title": "Báo cáo số liệu", "number": "12/BC-STTTT", "date": "2025-01-15"}],
    }


@pytest.fixture(scope="module")
def with_catalogue(running: RunningSystem) -> RunningSystem:
    response = running.ingest.post(
        "/v1/catalogues", json=fixture_catalogue(), headers={"Authorization": f"Bearer {running.keys['admin']}"}
    )
    assert response.status_code == 201, response.text
    return running


def test_three_provinces_report_and_the_ranking_and_scorecard_follow(with_catalogue: RunningSystem) -> None:
    system = with_catalogue
    submissions = [
        # gia-lai: 1.1 chair 10, 1.2 yes 10, 3.1 60% of 80% → 15, 3.2 50% → 10: total 45
        ("gia-lai", "1.1", {"a": "chair"}),
        ("gia-lai", "1.2", {"a": True}),
        ("gia-lai", "3.1", {"a": 600, "b": 1000}),
        ("gia-lai", "3.2", {"a": 1, "b": 2}),
        # binh-dinh: 1.1 vice chair 5, 3.1 90% → capped 20, 3.2 100% → 20: total 45 (tie with gia-lai)
        ("binh-dinh", "1.1", {"a": "vice_chair"}),
        ("binh-dinh", "3.1", {"a": 900, "b": 1000}),
        ("binh-dinh", "3.2", {"a": 7, "b": 7}),
        # da-nang: 1.2 no 0, 3.1 20% → 5: total 5
        ("da-nang", "1.2", {"a": False}),
        ("da-nang", "3.1", {"a": 200, "b": 1000}),
    ]
    last = 0
    for index, (unit, indicator, inputs) in enumerate(submissions):
        response = system.post_measurement(unit, body(unit, indicator, inputs), f"e2e-{index}")
        assert response.status_code == 201, response.text
        assert response.json()["replayed"] is False
        last = response.json()["sequence"]
    rankings = system.wait_until_projected(last, SCOPE)
    table = [(row["rank_label"], row["unit_id"], row["total"], row["pillars"]) for row in rankings["rankings"]]
    # every registered province is ranked: the 60 that reported nothing share rank 4 with 0 points
    assert table[:3] == [
        ("1/63", "binh-dinh", "45.00", {"1": "5.00", "3": "40.00"}),
        ("1/63", "gia-lai", "45.00", {"1": "20.00", "3": "25.00"}),
        ("3/63", "da-nang", "5.00", {"1": "0.00", "3": "5.00"}),
    ]
    assert len(table) == PROVINCES_2024
    assert {(row["rank_label"], row["total"], row["status"]) for row in rankings["rankings"][3:]} == {
        ("4/63", "0.00", "missing")
    }
    assert [row["status"] for row in rankings["rankings"][:3]] == ["reported"] * 3
    assert (rankings["rankings"][0]["unit_name_vi"], rankings["rankings"][0]["unit_code"]) == ("Bình Định", "52")
    card = system.reporting.get("/v1/units/gia-lai/scorecard", params=SCOPE).json()
    assert (card["total"], card["rank_label"], card["max_points"]) == ("45.00", "1/63", "60")
    assert card["unit_name_vi"] == "Gia Lai"
    infrastructure = next(pillar for pillar in card["pillars"] if pillar["code"] == "3")
    share = next(child for child in infrastructure["children"] if child["code"] == "3.1")
    assert (share["points"], share["max_points"], share["status"], share["inputs"]) == (
        "15.00",
        "20",
        "scored",
        {"a": "600", "b": "1000"},
    )
    system.wait_for(lambda: system.scoring.get("/v1/units/da-nang/scores/*", params=SCOPE).status_code == 200)
    explained = system.scoring.get("/v1/units/gia-lai/scores/3.1", params=SCOPE).json()
    assert explained["points"] == "15.00"
    assert explained["explanation"]["inputs"] == {"a": "600", "b": "1000"}
    assert explained["explanation"]["formula"] == "min((600)/(1000) = 0.6 / 0.8, 1) × 20 = 15"


def test_a_correction_moves_the_ranking(with_catalogue: RunningSystem) -> None:
    system = with_catalogue
    response = system.post_measurement("da-nang", body("da-nang", "1.1", {"a": "chair"}), "e2e-correction-1")
    response = system.post_measurement("da-nang", body("da-nang", "3.2", {"a": 9, "b": 9}), "e2e-correction-2")
    rankings = system.wait_until_projected(response.json()["sequence"], SCOPE)["rankings"]
    # last of the units that reported (below them, the 60 silent provinces with 0)
    reported = [(row["rank_label"], row["unit_id"], row["total"]) for row in rankings if row["status"] == "reported"]
    assert reported[-1] == ("3/63", "da-nang", "35.00")


def test_a_key_cannot_write_for_another_unit(with_catalogue: RunningSystem) -> None:
    response = with_catalogue.post_measurement("gia-lai", body("da-nang", "1.2", {"a": True}), "e2e-cross-unit")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [{"field": "unit_id", "message": "not bound to this key"}]


def test_a_repeated_idempotency_key_stores_one_event(with_catalogue: RunningSystem) -> None:
    system = with_catalogue
    first = system.post_measurement("gia-lai", body("gia-lai", "1.2", {"a": True}), "e2e-repeat")
    again = system.post_measurement("gia-lai", body("gia-lai", "1.2", {"a": True}), "e2e-repeat")
    other = system.post_measurement("gia-lai", body("gia-lai", "1.2", {"a": False}), "e2e-repeat")
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json()["event_id"] == first.json()["event_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    follow = system.post_measurement("gia-lai", body("gia-lai", "1.2", {"a": True}), "e2e-after-repeat")
    assert follow.json()["sequence"] == first.json()["sequence"] + 1


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"indicator": "9.9"}, 422, "indicator"),
        ({"inputs": {"a": 1200, "b": 1000}, "indicator": "3.1"}, 422, "inputs.a"),
        ({"inputs": {"a": 10, "b": 0}, "indicator": "3.1"}, 422, "inputs.b"),
        ({"inputs": {"a": "mayor"}, "indicator": "1.1"}, 422, "inputs.a"),
        ({"period": 1890}, 422, "period"),
        ({"catalogue_version": "9.9"}, 422, "catalogue_id"),
    ],
)
def test_bad_input_gets_a_problem_naming_the_field(
    with_catalogue: RunningSystem, change: dict[str, Any], status: int, field: str
) -> None:
    request = {**body("gia-lai", "1.2", {"a": True}), **change}
    response = with_catalogue.post_measurement("gia-lai", request, f"e2e-bad-{field}-{change}")
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]


def test_writes_need_a_key_and_an_idempotency_key(with_catalogue: RunningSystem) -> None:
    system = with_catalogue
    anonymous = system.ingest.post("/v1/measurements", json=body("gia-lai", "1.2", {"a": True}))
    assert anonymous.status_code == 401
    keyless = system.ingest.post(
        "/v1/measurements",
        json=body("gia-lai", "1.2", {"a": True}),
        headers={"Authorization": f"Bearer {system.keys['gia-lai']}"},
    )
    assert keyless.status_code == 400
    assert keyless.json()["errors"] == [{"field": "Idempotency-Key", "message": "required"}]


def test_the_event_feed_returns_every_stored_event_in_order_and_resumes_anywhere(with_catalogue: RunningSystem) -> None:
    system = with_catalogue
    auditor = {"Authorization": f"Bearer {system.keys['admin']}"}
    assert system.post_measurement("da-nang", body("da-nang", "1.2", {"a": False}), "e2e-feed").status_code in (
        200,
        201,
    )
    signed = system.ingest.post("/v1/audit/checkpoints", headers={**auditor, "Idempotency-Key": "feed-checkpoint"})
    assert signed.status_code == 201
    pages, after = [], 0
    while True:
        page = system.ingest.get("/v1/events", params={"after": after, "limit": 4}, headers=auditor).json()
        pages.append(page["events"])
        if not page["events"]:
            break
        after = page["next_after"]
    sequences = [event["sequence"] for page in pages for event in page]
    assert sequences == list(range(1, len(sequences) + 1))
    # the log starts with the keys granted before the first start, the bundled unit lists (one event
    # each), then the catalogues
    types = [event["type"] for page in pages for event in page]
    granted = types.index("vn.kpi.units.registered.v1")
    assert granted > 0 and set(types[:granted]) == {"vn.kpi.keys.granted.v1"}
    types = types[granted:]
    assert types[:BUNDLED_UNIT_LISTS] == ["vn.kpi.units.registered.v1"] * BUNDLED_UNIT_LISTS
    assert types[BUNDLED_UNIT_LISTS] == "vn.kpi.catalogue.registered.v1"
    schemas = {
        name: system.ingest.get(f"/v1/schemas/{name}").json() for name in system.ingest.get("/v1/schemas").json()
    }
    for event in (event for page in pages for event in page):
        jsonschema.validate(event, schemas[event["type"]])
    assert {event["type"] for page in pages for event in page} == {
        "vn.kpi.units.registered.v1",
        "vn.kpi.catalogue.registered.v1",
        "vn.kpi.measurement.recorded.v1",
        "vn.kpi.audit.checkpoint.v1",
        "vn.kpi.keys.granted.v1",
    }
    filtered = system.ingest.get(
        "/v1/events", params={"unit": "da-nang", "type": "vn.kpi.measurement.recorded.v1"}, headers=auditor
    ).json()
    assert {event["data"]["unit_id"] for event in filtered["events"]} == {"da-nang"}
    assert filtered["next_after"] == sequences[-1]
    reporter = {"Authorization": f"Bearer {system.keys['gia-lai']}"}
    assert system.ingest.get("/v1/events", headers=reporter).status_code == 403


def test_as_of_answers_exactly_what_the_system_answered_then(with_catalogue: RunningSystem) -> None:
    system = with_catalogue
    script = [
        ("gia-lai", "3.2", {"a": 1, "b": 4}),
        ("binh-dinh", "1.2", {"a": True}),
        ("da-nang", "3.1", {"a": 800, "b": 1000}),
        ("gia-lai", "3.2", {"a": 3, "b": 4}),
    ]
    snapshots = []
    for index, (unit, indicator, inputs) in enumerate(script):
        response = system.post_measurement(unit, body(unit, indicator, inputs), f"e2e-as-of-{index}")
        sequence = response.json()["sequence"]
        rankings = system.wait_until_projected(sequence, SCOPE)
        card = system.reporting.get("/v1/units/gia-lai/scorecard", params=SCOPE).json()
        snapshots.append((sequence, response.json()["recorded_at"], rankings, card))
    last = snapshots[-1][0]  # the script ends with gia-lai: its total is rewritten by the last event
    system.wait_for(
        lambda: system.scoring.get("/v1/units/gia-lai/scores/*", params=SCOPE).json().get("as_of_sequence") == last
    )
    for sequence, recorded_at, rankings, card in snapshots:
        by_sequence = system.reporting.get("/v1/rankings", params={**SCOPE, "as_of": sequence}).json()
        by_time = system.reporting.get("/v1/rankings", params={**SCOPE, "as_of": recorded_at}).json()
        assert by_sequence["rankings"] == by_time["rankings"] == rankings["rankings"]
        assert by_sequence["as_of_sequence"] == by_time["as_of_sequence"] == sequence
        past_card = system.reporting.get("/v1/units/gia-lai/scorecard", params={**SCOPE, "as_of": sequence}).json()
        assert past_card["pillars"] == card["pillars"] and past_card["total"] == card["total"]
        past_score = system.scoring.get("/v1/units/gia-lai/scores/*", params={**SCOPE, "as_of": sequence}).json()
        assert past_score["points"] == card["total"]
    assert snapshots[0][2]["rankings"] != snapshots[-1][2]["rankings"]
    bad = system.reporting.get("/v1/rankings", params={**SCOPE, "as_of": "yesterday"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "as_of"


def test_history_lists_every_submission_of_a_unit_in_order_with_who_and_when(with_catalogue: RunningSystem) -> None:
    history = with_catalogue.reporting.get("/v1/units/gia-lai/history", params={**SCOPE, "indicator": "3.2"}).json()
    assert [entry["inputs"] for entry in history][:1] == [{"a": "1", "b": "2"}]
    assert [entry["inputs"] for entry in history][-2:] == [{"a": "1", "b": "4"}, {"a": "3", "b": "4"}]
    assert {entry["by"] for entry in history} == {"gia-lai"}
    assert [entry["sequence"] for entry in history] == sorted(entry["sequence"] for entry in history)
    assert all(entry["recorded_at"].endswith("Z") for entry in history)


def test_diff_lists_the_ranks_and_scores_that_moved_and_the_events_responsible(with_catalogue: RunningSystem) -> None:
    system = with_catalogue
    before = system.reporting.get("/v1/rankings", params=SCOPE).json()
    start = before["as_of_sequence"]
    old_total = next(row["total"] for row in before["rankings"] if row["unit_id"] == "da-nang")
    response = system.post_measurement("da-nang", body("da-nang", "1.2", {"a": True}), "e2e-diff-1")
    end = response.json()["sequence"]
    system.wait_until_projected(end, SCOPE)
    diff = system.reporting.get("/v1/diff", params={**SCOPE, "from": start, "to": end}).json()
    assert (diff["from_sequence"], diff["to_sequence"]) == (start, end)
    assert [(event["sequence"], event["unit_id"], event["indicator"]) for event in diff["events"]] == [
        (end, "da-nang", "1.2")
    ]
    new_total = f"{float(old_total) + 10:.2f}"
    assert {(change["unit_id"], change["code"]): (change["from"], change["to"]) for change in diff["scores"]} == {
        ("da-nang", "1.2"): ("0.00", "10.00"),
        ("da-nang", "1"): ("10.00", "20.00"),
    }
    after = system.reporting.get("/v1/rankings", params=SCOPE).json()
    ranks_before = {row["unit_id"]: (row["rank_label"], row["total"]) for row in before["rankings"]}
    ranks_after = {row["unit_id"]: (row["rank_label"], row["total"]) for row in after["rankings"]}
    moved_units = sorted(unit for unit in ranks_after if ranks_after[unit] != ranks_before.get(unit))
    assert [rank["unit_id"] for rank in diff["ranks"]] == moved_units
    da_nang = next(rank for rank in diff["ranks"] if rank["unit_id"] == "da-nang")
    assert (da_nang["from"]["total"], da_nang["to"]["total"]) == (old_total, new_total)
    unchanged = system.reporting.get("/v1/diff", params={**SCOPE, "from": end, "to": end}).json()
    assert (unchanged["ranks"], unchanged["scores"], unchanged["events"]) == ([], [], [])


def test_a_broken_catalogue_is_refused_over_http_with_every_defect_named(with_catalogue: RunningSystem) -> None:
    system = with_catalogue
    admin = {"Authorization": f"Bearer {system.keys['admin']}"}
    broken = fixture_catalogue()
    broken["version"] = "2.0"
    broken["nodes"][1]["max_points"] = "12"  # 1.1 no longer sums to pillar 1
    broken["nodes"].append({**broken["nodes"][-1]})  # a duplicate code
    broken["nodes"][4]["rule"] = {"kind": "ratio", "numerator": ["z"], "denominator": ["b"]}  # undeclared input
    refused = system.ingest.post("/v1/catalogues", json=broken, headers=admin)
    assert refused.status_code == 422
    messages = [error["message"] for error in refused.json()["errors"]]
    assert "node 1: children's max points sum to 22, max is 20" in messages
    assert "node 3.2: duplicate code" in messages
    assert "node 3.1: rule uses undeclared input 'z'" in messages
    assert system.ingest.get("/v1/catalogues/mini-dti/versions/2.0").status_code == 404
    same_version = system.ingest.post(
        "/v1/catalogues", json={**fixture_catalogue(), "title_en": "changed"}, headers=admin
    )
    assert same_version.status_code == 409  # a version is immutable: a change is a new version
    reporter = {"Authorization": f"Bearer {system.keys['gia-lai']}"}
    assert system.ingest.post("/v1/catalogues", json=broken, headers=reporter).status_code == 403


def test_a_body_that_is_not_json_gets_a_problem_naming_the_body(with_catalogue: RunningSystem) -> None:
    headers = {"Authorization": f"Bearer {with_catalogue.keys['gia-lai']}", "Idempotency-Key": "e2e-not-json"}
    response = with_catalogue.ingest.post(
        "/v1/measurements", content=b"{nope", headers={**headers, "content-type": "application/json"}
    )
    assert (response.status_code, response.headers["content-type"]) == (422, "application/problem+json")
    assert [error["field"] for error in response.json()["errors"]] == ["body"]
    infinite = json.dumps(body("gia-lai", "3.1", {"b": 2})).replace('"inputs": {', '"inputs": {"a": 1e999, ').encode()
    response = with_catalogue.ingest.post(
        "/v1/measurements", content=infinite, headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["inputs.a"]
