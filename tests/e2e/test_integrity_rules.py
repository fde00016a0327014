"""Who is ranked and who may say what, over HTTP on the real system: each hole found on the old main
(issue 10) is closed. Every test here failed before the unit registry and the integrity rules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e
DISTRICTS_2024 = {"catalogue_id": "hcmc-dti-districts", "catalogue_version": "1.0", "period": 2024}
DISTRICTS_QUERY = {"catalogue": "hcmc-dti-districts", "version": "1.0", "period": 2024}
PROVINCES_QUERY = {"catalogue": "vn-dti-province", "version": "1.0"}
EVIDENCE = [{"title": "Báo cáo của đơn vị", "number": "12/BC-UBND", "date": "2024-12-01"}]


def measure(system: RunningSystem, key: str, unit: str, indicator: str, key_id: str, **body: Any) -> Any:
    payload = {**DISTRICTS_2024, "unit_id": unit, "indicator": indicator, "evidence": EVIDENCE, **body}
    return system.post(key, "/v1/measurements", payload, key_id)


def fields(response: Any) -> list[str]:
    return [error["field"] for error in response.json().get("errors", [])]


def ranking(system: RunningSystem, query: dict[str, Any], sequence: int = 0) -> dict[str, Any]:
    return system.wait_until_projected(sequence, query)


def test_a_reporter_cannot_write_the_verified_result(running: RunningSystem) -> None:
    refused = measure(running, "quan-1", "quan-1", "3.3", "self-verify", inputs={"a": "1"}, stage="verification")
    assert refused.status_code == 403
    assert fields(refused) == ["stage"]


@pytest.mark.parametrize("intruder", ["quan-33", "gia-lai", "so-tttt"])
def test_a_unit_outside_the_peer_group_is_refused_naming_unit_id(running: RunningSystem, intruder: str) -> None:
    refused = measure(running, "any-unit", intruder, "5.1", f"intruder-{intruder}", inputs={"a": 0})
    assert refused.status_code == 422, refused.text
    assert fields(refused) == ["unit_id"]
    assert "hcmc-districts" in refused.json()["errors"][0]["message"]


def test_every_registered_district_is_ranked_and_silence_scores_zero(running: RunningSystem) -> None:
    first = measure(running, "quan-1", "quan-1", "5.1", "minmax-q1", inputs={"a": 4})
    second = measure(running, "quan-3", "quan-3", "5.1", "minmax-q3", inputs={"a": 2})
    assert (first.status_code, second.status_code) == (201, 201)
    found = ranking(running, DISTRICTS_QUERY, second.json()["sequence"])
    rows = {row["unit_id"]: row for row in found["rankings"]}
    assert len(rows) == 22  # Thủ Đức city and 21 districts, as registered
    assert rows["quan-1"]["rank_label"] == "1/22" and rows["quan-1"]["unit_name_vi"] == "Quận 1"
    # the Min-Max peers are the two real reporters: 2 is the minimum, so 0 points, and nobody else counts
    assert rows["quan-3"]["pillars"]["5"] == "0.00"
    silent = rows["can-gio"]
    assert (silent["total"], silent["status"], silent["rank_label"]) == ("0.00", "missing", "2/22")


def test_not_applicable_is_refused_where_the_source_applies_the_criterion_to_everyone(
    running: RunningSystem,
) -> None:
    refused = measure(running, "quan-1", "quan-1", "1.1", "na-1.1", not_applicable_reason="abc")
    assert refused.status_code == 422
    assert "not_applicable_reason" in fields(refused)


def test_a_not_applicable_claim_needs_evidence_and_is_shown_as_claimed(running: RunningSystem) -> None:
    body = {**DISTRICTS_2024, "unit_id": "thu-duc", "indicator": "5.2", "not_applicable_reason": "Không có hệ thống"}
    bare = running.post("thu-duc", "/v1/measurements", body, "na-bare")
    assert bare.status_code == 422 and fields(bare) == ["evidence"]
    claimed = measure(running, "thu-duc", "thu-duc", "5.2", "na-claim", not_applicable_reason="Không có hệ thống")
    assert claimed.status_code == 201, claimed.text
    ranking(running, DISTRICTS_QUERY, claimed.json()["sequence"])
    card = running.reporting.get("/v1/units/thu-duc/scorecard", params=DISTRICTS_QUERY).json()
    pillar = next(node for node in card["pillars"] if node["code"] == "5")
    component = next(node for node in pillar["children"] if node["code"] == "5.2")
    assert component["status"] == "not_applicable_claimed"


def test_a_verification_replacing_an_adjustment_must_name_it(running: RunningSystem) -> None:
    assert measure(running, "binh-chanh", "binh-chanh", "3.3", "sup-self", inputs={"a": "0.9"}).status_code == 201
    scope = {**DISTRICTS_2024, "unit_id": "binh-chanh", "indicator": "3.3"}
    adjusted = running.post(
        "evaluator",
        "/v1/verifications",
        {**scope, "decision": "adjusted", "inputs": {"a": "0.6"}, "reason": "Minh chứng chỉ cho thấy 60%"},
        "sup-adjust",
    )
    assert adjusted.status_code == 201
    silent = running.post("evaluator", "/v1/verifications", {**scope, "decision": "accepted"}, "sup-accept")
    assert silent.status_code == 409 and fields(silent) == ["supersedes"]
    assert adjusted.json()["event_id"] in silent.json()["errors"][0]["message"]
    named = {**scope, "decision": "accepted", "supersedes": adjusted.json()["event_id"]}
    accepted = running.post("evaluator", "/v1/verifications", named, "sup-accept-named")
    assert accepted.status_code == 201
    ranking(running, DISTRICTS_QUERY, accepted.json()["sequence"])
    history = running.reporting.get("/v1/units/binh-chanh/history", params=DISTRICTS_QUERY).json()
    decisions = [(row.get("decision"), row.get("reason")) for row in history if row.get("stage") == "verification"]
    assert decisions == [("adjusted", "Minh chứng chỉ cho thấy 60%"), ("accepted", None)]


def test_shares_amounts_and_bands_mean_what_they_say(running: RunningSystem) -> None:
    for index, share in enumerate([45, "80", "1.5"]):
        refused = measure(running, "quan-3", "quan-3", "3.3", f"share-{index}", inputs={"a": share})
        assert refused.status_code == 422 and fields(refused) == ["inputs.a"], share
    assert measure(running, "quan-3", "quan-3", "3.3", "share-percent", inputs={"a": "45%"}).status_code == 201
    assert measure(running, "quan-3", "quan-3", "3.3", "share-comma", inputs={"a": "0,45"}).status_code == 201
    province = {**PROVINCES_QUERY, "period": 2024}
    base = {"catalogue_id": "vn-dti-province", "catalogue_version": "1.0", "period": 2024, "unit_id": "gia-lai"}
    negative = running.post("gia-lai", "/v1/measurements", {**base, "indicator": "5.12.2", "inputs": {"a": -1}}, "neg")
    assert negative.status_code == 422 and fields(negative) == ["inputs.a"]
    band = running.post("gia-lai", "/v1/measurements", {**base, "indicator": "1.5", "inputs": {"a": "from_20"}}, "b1")
    assert band.status_code == 422
    counted = running.post(
        "gia-lai", "/v1/measurements", {**base, "indicator": "1.5", "inputs": {"a": True, "b": 12}}, "band-12"
    )
    assert counted.status_code == 201, counted.text
    found = ranking(running, province, counted.json()["sequence"])
    gia_lai = next(row for row in found["rankings"] if row["unit_id"] == "gia-lai")
    assert gia_lai["pillars"]["1"] == "5.00"  # 10 to 19 items: half of 10, whatever band a caller would claim
    spending = running.post(
        "gia-lai",
        "/v1/measurements",
        {**base, "indicator": "5.12.1", "inputs": {"a": "1,5", "b": "0.5", "c": "20"}},
        "spending",
    )
    assert spending.status_code == 201, spending.text
    ranking(running, province, spending.json()["sequence"])
    card = running.reporting.get("/v1/units/gia-lai/scorecard", params=province).json()
    lines = {node["code"]: node for node in _walk(card["pillars"])}
    assert (lines["5.12.1.a"]["value"], lines["5.12.1.b"]["value"]) == ("1.5", "0.5")  # the data lines' own values
    assert card["unit_name_vi"] == "Gia Lai"


def _walk(nodes: list[dict[str, Any]]) -> Any:
    for node in nodes:
        yield node
        yield from _walk(node.get("children", []))


def test_publication_needs_every_decision_or_a_stated_reason(running: RunningSystem) -> None:
    empty = {"catalogue_id": "hcmc-dti-departments", "catalogue_version": "1.0", "period": 2024}
    nothing = running.post("approver", "/v1/publications", {**empty, "incomplete_reason": "Công bố thử nghiệm"}, "e")
    assert nothing.status_code == 409  # an empty ranking is never publishable, whatever the reason
    assert measure(running, "quan-1", "quan-1", "1.1", "pub-self", inputs={"a": "deputy"}).status_code == 201
    verified = {**DISTRICTS_2024, "unit_id": "quan-1", "indicator": "1.1", "decision": "accepted"}
    assert running.post("evaluator", "/v1/verifications", verified, "pub-verify").status_code == 201
    incomplete = running.post("approver", "/v1/publications", DISTRICTS_2024, "pub-1")
    assert incomplete.status_code == 409 and fields(incomplete) == ["incomplete_reason"]
    reason = "Công bố theo chỉ đạo, các đơn vị còn lại bổ sung sau"
    published = running.post("approver", "/v1/publications", {**DISTRICTS_2024, "incomplete_reason": reason}, "pub-2")
    assert published.status_code == 201, published.text
    publication = published.json()["publication"]
    missing = {entry["unit_id"]: entry["count"] for entry in publication["missing"]}
    assert publication["incomplete_reason"] == reason
    assert len(missing) == 22 and missing["quan-1"] == 50 and missing["can-gio"] == 51
    again = running.post("approver", "/v1/publications", {**DISTRICTS_2024, "incomplete_reason": reason}, "pub-2")
    assert again.status_code == 200 and again.json()["event_id"] == published.json()["event_id"]


def test_workflow_requests_are_idempotent(running: RunningSystem) -> None:
    body = {**DISTRICTS_2024, "unit_id": "quan-3", "indicator": "3.3", "message": "Đề nghị bổ sung danh sách"}
    without = running.post("evaluator", "/v1/evidence-requests", body)
    assert without.status_code == 400 and fields(without) == ["Idempotency-Key"]
    first = running.post("evaluator", "/v1/evidence-requests", body, "ask-once")
    again = running.post("evaluator", "/v1/evidence-requests", body, "ask-once")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["event_id"] == first.json()["event_id"]
    changed = running.post("evaluator", "/v1/evidence-requests", {**body, "message": "Khác"}, "ask-once")
    assert changed.status_code == 409


def test_2024_ranks_the_63_provinces_and_2025_the_34(running: RunningSystem) -> None:
    base = {"catalogue_id": "vn-dti-province", "catalogue_version": "1.0", "unit_id": "da-nang", "indicator": "1.6"}
    before = running.post("da-nang", "/v1/measurements", {**base, "period": 2024, "inputs": {"a": True}}, "dn-24")
    assert before.status_code == 201, before.text
    after = running.post("da-nang", "/v1/measurements", {**base, "period": 2025, "inputs": {"a": True}}, "dn-25")
    assert after.status_code == 422 and fields(after) == ["unit_id"]
    assert "da-nang-2025" in after.json()["errors"][0]["message"]  # the successor is named, never guessed
    year_2024 = ranking(running, {**PROVINCES_QUERY, "period": 2024}, before.json()["sequence"])
    year_2025 = ranking(running, {**PROVINCES_QUERY, "period": 2025}, before.json()["sequence"])
    assert len(year_2024["rankings"]) == 63 and year_2024["rankings"][0]["rank_label"] == "1/63"
    assert len(year_2025["rankings"]) == 34
    assert {row["unit_id"] for row in year_2025["rankings"]} >= {"da-nang-2025", "ha-noi", "hue"}
    registry = running.ingest.get("/v1/peer-groups/provinces", params={"period": 2025}).json()
    successor = next(unit for unit in registry["units"] if unit["id"] == "da-nang-2025")
    assert successor["predecessors"] == ["da-nang", "quang-nam"]


def test_a_units_trend_is_carried_across_the_merger_by_its_predecessors(running: RunningSystem) -> None:
    base = {"catalogue_id": "vn-dti-province", "catalogue_version": "1.0", "indicator": "1.6", "inputs": {"a": True}}
    for unit, period in [("quang-nam", 2024), ("da-nang-2025", 2025)]:
        sent = running.post("any-unit", "/v1/measurements", {**base, "unit_id": unit, "period": period}, f"t-{unit}")
        assert sent.status_code == 201, sent.text
    ranking(running, {**PROVINCES_QUERY, "period": 2025}, sent.json()["sequence"])

    trend = running.reporting.get("/v1/units/da-nang-2025/trend", params=PROVINCES_QUERY).json()
    by_period = {point["period"]: point for point in trend["periods"]}
    assert {(line["unit_id"], line["relation"]) for line in by_period[2024]["lines"]} == {
        ("da-nang", "predecessor"),
        ("quang-nam", "predecessor"),
    }
    assert all(line["rank_label"].endswith("/63") for line in by_period[2024]["lines"])  # each its own figures
    [own] = by_period[2025]["lines"]
    assert (own["unit_id"], own["relation"], own["rank_label"]) == ("da-nang-2025", "self", "1/34")
    assert by_period[2025]["units_ranked"] == 34 and by_period[2025]["peer_best"] == own["total"]

    earlier = running.reporting.get("/v1/units/da-nang/trend", params=PROVINCES_QUERY).json()
    assert [(p["period"], [line["relation"] for line in p["lines"]]) for p in earlier["periods"]] == [
        (2024, ["self"]),
        (2025, ["successor"]),
    ]
    unknown = running.reporting.get("/v1/units/quan-33/trend", params=PROVINCES_QUERY)
    assert unknown.status_code == 404 and fields(unknown) == ["unit"]


def test_a_repeated_checkpoint_request_stores_one_checkpoint(running: RunningSystem) -> None:
    keyless = running.post("admin", "/v1/audit/checkpoints")
    assert keyless.status_code == 400 and fields(keyless) == ["Idempotency-Key"]
    first = running.post("admin", "/v1/audit/checkpoints", None, "checkpoint-once")
    again = running.post("admin", "/v1/audit/checkpoints", None, "checkpoint-once")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["event_id"] == first.json()["event_id"]
    admin = {"Authorization": f"Bearer {running.keys['admin']}"}
    feed = running.ingest.get("/v1/events", params={"after": 0, "limit": 1000}, headers=admin).json()["events"]
    assert [event["id"] for event in feed if event["type"] == "vn.kpi.audit.checkpoint.v1"] == [
        first.json()["event_id"]
    ]
