"""A unit's trend in any node (a component, a pillar, the total) over HTTP on the real system (issue 13,
"Trends"): as JSON (`/v1/units/{unit}/trend?indicator=`) and as CSV (`/v1/units/{unit}/trend.csv`), each
figure equal to what the scorecards, the rankings and the SDMX export serve for that period, ranks
included, carried across the 2025 merger by the predecessors; an unknown code is a problem naming it."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e
CAT = {"catalogue": "vn-dti-province", "version": "1.0"}
# 3.1 is a/b of 10 points: gia-lai and binh-dinh tie in 2023; quang-nam and da-nang merge into da-nang-2025
SUBMISSIONS = [
    (2023, "gia-lai", "3.1", {"a": 600_000, "b": 1_500_000}),
    (2023, "binh-dinh", "3.1", {"a": 600_000, "b": 1_500_000}),
    (2023, "da-nang", "3.1", {"a": 900_000, "b": 1_200_000}),
    (2023, "da-nang", "1.6", {"a": True}),
    (2024, "gia-lai", "3.1", {"a": 1_275_000, "b": 1_500_000}),
    (2024, "da-nang", "3.1", {"a": 380_000, "b": 1_000_000}),
    (2024, "quang-nam", "3.1", {"a": 500_000, "b": 1_000_000}),
    (2024, "quang-nam", "1.6", {"a": True}),
    (2025, "da-nang-2025", "3.1", {"a": 700_000, "b": 1_000_000}),
]
REASON = "Công bố thử nghiệm xu hướng"


@pytest.fixture(scope="module")
def scripted(running: RunningSystem) -> int:
    """Three years of self-assessments, 2024's gia-lai 3.1 verified and 2024 published."""
    last = 0
    for period, unit, indicator, inputs in SUBMISSIONS:
        body = {"catalogue_id": CAT["catalogue"], "catalogue_version": CAT["version"], "period": period}
        body |= {"unit_id": unit, "indicator": indicator, "inputs": inputs}
        posted = running.post("any-unit", "/v1/measurements", body, f"trend-{period}-{unit}-{indicator}")
        assert posted.status_code == 201, posted.text
        last = posted.json()["sequence"]
    scope = {"catalogue_id": CAT["catalogue"], "catalogue_version": CAT["version"], "period": 2024}
    verified = {**scope, "unit_id": "gia-lai", "indicator": "3.1", "decision": "accepted"}
    assert running.post("evaluator", "/v1/verifications", verified, "trend-v-2024").status_code == 201
    published = running.post("approver", "/v1/publications", {**scope, "incomplete_reason": REASON}, "trend-p-2024")
    assert published.status_code == 201, published.text
    last = int(published.json()["sequence"])
    for period in (2023, 2024, 2025):
        running.wait_until_projected(last, {**CAT, "period": period})
    running.wait_for(
        lambda: running.reporting.get("/v1/rankings", params={**CAT, "period": 2024, "stage": "published"}).is_success
    )
    return last


def walk(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        yield from walk(node.get("children", []))


def card_node(client: httpx.Client, unit: str, period: int, code: str, stage: str) -> dict[str, Any]:
    """The node of the unit's scorecard of that period (the total as the card's own figures)."""
    card = client.get(f"/v1/units/{unit}/scorecard", params={**CAT, "period": period, "stage": stage})
    assert card.status_code == 200, card.text
    found = card.json()
    if code == "_T":
        return {"points": found["total"], "max_points": found["max_points"], "status": None, "value": None}
    return next(node for node in walk(found["pillars"]) if node["code"] == code)


def every_units_points(client: httpx.Client, period: int, code: str, stage: str) -> dict[str, Decimal]:
    """Each ranked unit's points in a node, as the API's SDMX export (every unit's scorecard) answers them."""
    found = client.get("/v1/rankings.sdmx.csv", params={**CAT, "period": period, "stage": stage})
    assert found.status_code == 200, found.text
    rows = list(csv.DictReader(io.StringIO(found.text)))
    return {row["UNIT"]: Decimal(row["OBS_VALUE"] or "0") for row in rows if row["INDICATOR"] == code}


def competition_rank(points: dict[str, Decimal], unit: str) -> str:
    """1 + the units with more points, of all: ties share a rank."""
    return f"{1 + sum(other > points[unit] for other in points.values())}/{len(points)}"


def served_ranks(client: httpx.Client, period: int, code: str, stage: str) -> dict[str, str]:
    """Each unit's "rank/N" in the node as the API serves it: the ranking (by the pillar) for the total and a
    pillar, the competition ranking of the export's points for a component (no ranking serves one)."""
    if code == "_T" or "." not in code:
        params: dict[str, str | int] = {**CAT, "period": period, "stage": stage}
        params |= {} if code == "_T" else {"pillar": code}
        ranking = client.get("/v1/rankings", params=params)
        assert ranking.status_code == 200, ranking.text
        return {row["unit_id"]: row["rank_label"] for row in ranking.json()["rankings"]}
    points = every_units_points(client, period, code, stage)
    return {unit: competition_rank(points, unit) for unit in points}


def median(values: list[Decimal]) -> Decimal:
    ordered, middle = sorted(values), len(values) // 2
    return ordered[middle] if len(values) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def check_against_the_api(client: httpx.Client, node: dict[str, Any], code: str, stage: str) -> None:
    """Every period and line of a node's trend against the scorecards, rankings and export of that period."""
    for point in node["periods"]:
        period = point["period"]
        everyone = every_units_points(client, period, code, stage)
        ranks = served_ranks(client, period, code, stage)
        assert point["units_ranked"] == len(everyone) == len(ranks)
        assert Decimal(point["peer_median"]) == median(list(everyone.values())).quantize(Decimal("0.01"))
        assert Decimal(point["peer_best"]) == max(everyone.values())
        for line in point["lines"]:
            served = card_node(client, line["unit_id"], period, code, stage)
            assert line["points"] == served["points"], (period, line)
            assert node["max_points"] == served["max_points"]
            assert (line["status"], line["value"]) == (served["status"], served.get("value")), (period, line)
            assert line["rank_label"] == ranks[line["unit_id"]], (period, line)
            assert line["rank"] == int(ranks[line["unit_id"]].split("/")[0])


@pytest.mark.parametrize("code", ["3.1", "3", "_T"])
def test_a_units_trend_in_any_node_is_what_the_scorecards_and_rankings_serve_for_each_period(
    running: RunningSystem, scripted: int, code: str
) -> None:
    answer = running.reporting.get("/v1/units/gia-lai/trend", params={**CAT, "indicator": code})
    assert answer.status_code == 200, answer.text
    found = answer.json()
    node = found["indicator"]
    assert node["code"] == code
    assert [point["period"] for point in node["periods"]] == [point["period"] for point in found["periods"]]
    # gia-lai ended on 2025-06-30: in 2025 its successor stands for it
    assert [(p["period"], [line["relation"] for line in p["lines"]]) for p in node["periods"]] == [
        (2023, ["self"]),
        (2024, ["self"]),
        (2025, ["successor"]),
    ]
    check_against_the_api(running.reporting, node, code, "self_assessment")
    if code == "3.1":
        by_period = {point["period"]: point["lines"][0] for point in node["periods"]}
        assert by_period[2023]["rank_label"] == "2/63"  # tied with binh-dinh, behind da-nang
        assert (by_period[2024]["points"], by_period[2024]["rank_label"]) == ("8.50", "1/63")
        assert (by_period[2025]["unit_id"], by_period[2025]["rank_label"]) == ("gia-lai-2025", "2/34")
    if code == "_T":  # the total's lines are the trend's own
        assert [(p["lines"][0]["points"], p["lines"][0]["rank_label"]) for p in node["periods"]] == [
            (p["lines"][0]["total"], p["lines"][0]["rank_label"]) for p in found["periods"]
        ]


def test_the_trend_is_carried_across_the_merger_by_each_predecessor_with_its_own_rank(
    running: RunningSystem, scripted: int
) -> None:
    answer = running.reporting.get("/v1/units/da-nang-2025/trend", params={**CAT, "indicator": "3.1"})
    assert answer.status_code == 200, answer.text
    node = answer.json()["indicator"]
    lines = {p["period"]: [(line["unit_id"], line["relation"]) for line in p["lines"]] for p in node["periods"]}
    assert lines == {
        2023: [("da-nang", "predecessor"), ("quang-nam", "predecessor")],
        2024: [("da-nang", "predecessor"), ("quang-nam", "predecessor")],
        2025: [("da-nang-2025", "self")],
    }
    check_against_the_api(running.reporting, node, "3.1", "self_assessment")
    by_unit = {(point["period"], line["unit_id"]): line for point in node["periods"] for line in point["lines"]}
    assert by_unit[(2023, "quang-nam")]["status"] == "missing"  # it reported nothing in 2023: 0, ranked last
    assert by_unit[(2024, "quang-nam")]["rank_label"] == "2/63"  # behind gia-lai, ahead of da-nang
    assert by_unit[(2025, "da-nang-2025")]["rank_label"] == "1/34"
    successor = running.reporting.get("/v1/units/da-nang/trend", params={**CAT, "indicator": "3"}).json()["indicator"]
    assert [(p["period"], [line["relation"] for line in p["lines"]]) for p in successor["periods"]] == [
        (2023, ["self"]),
        (2024, ["self"]),
        (2025, ["successor"]),
    ]
    check_against_the_api(running.reporting, successor, "3", "self_assessment")


def test_a_published_trend_is_read_as_the_publication_froze_it(running: RunningSystem, scripted: int) -> None:
    with httpx.Client(base_url=running.reporting.base_url, timeout=10.0) as public:  # published: no key
        answer = public.get("/v1/units/gia-lai/trend", params={**CAT, "stage": "published", "indicator": "3.1"})
        assert answer.status_code == 200, answer.text
        node = answer.json()["indicator"]
        assert [point["period"] for point in node["periods"]] == [2024]
        check_against_the_api(public, node, "3.1", "published")
        [line] = node["periods"][0]["lines"]
        assert (line["points"], line["rank_label"]) == ("8.50", "1/63")  # verified: the only verified 3.1


def read_csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text.lstrip("\ufeff"))))


@pytest.mark.parametrize(("unit", "code"), [("da-nang-2025", "3.1"), ("gia-lai", "3"), ("gia-lai", None)])
def test_the_trend_downloads_as_csv_with_the_jsons_figures_and_the_registrys_names(
    running: RunningSystem, scripted: int, unit: str, code: str | None
) -> None:
    asked = {**CAT} | ({"indicator": code} if code else {})
    rows = read_csv(running.reporting.get(f"/v1/units/{unit}/trend.csv", params=asked))
    json_code = code or "_T"  # without `indicator`, the total
    node = running.reporting.get(f"/v1/units/{unit}/trend", params={**CAT, "indicator": json_code}).json()["indicator"]
    expected = [(point, line) for point in node["periods"] for line in point["lines"]]
    assert len(rows) == len(expected) > 0
    registry: dict[int, dict[str, Any]] = {}
    for row, (point, line) in zip(rows, expected, strict=True):
        period = point["period"]
        if period not in registry:
            listed = running.ingest.get("/v1/peer-groups/provinces", params={"period": period}).json()["units"]
            registry[period] = {entry["id"]: entry for entry in listed}
        known = registry[period][line["unit_id"]]
        assert (row["Năm (Period)"], row["Mã đơn vị (Unit id)"]) == (str(period), line["unit_id"])
        assert (row["Đơn vị (Unit)"], row["Mã thống kê (Unit code)"]) == (known["name_vi"], known.get("code") or "")
        assert (row["Mã chỉ số (Code)"], row["Điểm tối đa (Max)"]) == (json_code, node["max_points"])
        assert row["Điểm (Points)"] == line["points"] and row["Hạng (Rank)"] == line["rank_label"]
        assert (row["Trạng thái (Status)"], row["Giá trị (Value)"]) == (line["status"] or "", line["value"] or "")
        assert (row["Trung vị nhóm (Peer median)"], row["Cao nhất nhóm (Peer best)"]) == (
            point["peer_median"],
            point["peer_best"],
        )
        assert row["Quan hệ (Relation)"] == line["relation"]
    check_against_the_api(running.reporting, node, json_code, "self_assessment")
    if unit == "da-nang-2025":
        assert {row["Đơn vị (Unit)"] for row in rows} == {"Đà Nẵng", "Quảng Nam"} | {
            registry[2025]["da-nang-2025"]["name_vi"]
        }


@pytest.mark.parametrize("path", ["/v1/units/gia-lai/trend", "/v1/units/gia-lai/trend.csv"])
def test_an_unknown_indicator_is_a_problem_naming_it(running: RunningSystem, path: str) -> None:
    refused = running.reporting.get(path, params={**CAT, "indicator": "9.9"})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"].endswith("/unknown-indicator") and problem["title"] == "Unknown indicator"
    assert problem["errors"] == [{"field": "indicator", "message": "9.9"}]
