"""The spine on the official provincial DTI (decision 922): three provinces, three keys, ratio and
yes/no components of pillars 1 and 3, the ranking and a scorecard checked by hand. The ranking of 2024
has the 63 registered provinces: the 60 that report nothing rank last with 0."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import RunningSystem, bundled_peer_group

pytestmark = pytest.mark.e2e
SCOPE = {"catalogue": "vn-dti-province", "version": "1.0", "period": 2024}
PROVINCES_2024 = 63

SUBMISSIONS: list[tuple[str, str, dict[str, Any]]] = [
    # gia-lai: 1.6 yes 10; 1.3 directives 3/4 → 7.5; 3.1 smartphones 600k/1.5M → 4; 3.2 households 0.9 → 9
    ("gia-lai", "1.6", {"a": True}),
    ("gia-lai", "1.3", {"a": 3, "b": 4}),
    ("gia-lai", "3.1", {"a": 600_000, "b": 1_500_000}),
    ("gia-lai", "3.2", {"a": 360_000, "b": 400_000}),
    # binh-dinh: 1.6 no 0; 1.7 yes 10; 1.2 both halves 5 + 5; 3.1 0.85 → 8.5
    ("binh-dinh", "1.6", {"a": False}),
    ("binh-dinh", "1.7", {"a": True}),
    ("binh-dinh", "1.2", {"a": True, "b": True}),
    ("binh-dinh", "3.1", {"a": 1_275_000, "b": 1_500_000}),
    # da-nang: 1.6 yes 10; 3.1 everyone 10; 3.2 everyone 10; 1.3 1/3 → 3.33
    ("da-nang", "1.6", {"a": True}),
    ("da-nang", "3.1", {"a": 1_200_000, "b": 1_200_000}),
    ("da-nang", "3.2", {"a": 380_000, "b": 380_000}),
    ("da-nang", "1.3", {"a": 1, "b": 3}),
]


def test_three_provinces_on_pillars_1_and_3_of_the_provincial_dti(running: RunningSystem) -> None:
    last = 0
    for index, (unit, indicator, inputs) in enumerate(SUBMISSIONS):
        body = {"catalogue_id": "vn-dti-province", "catalogue_version": "1.0", "period": 2024, "unit_id": unit}
        response = running.post_measurement(unit, {**body, "indicator": indicator, "inputs": inputs}, f"prov-{index}")
        assert response.status_code == 201, response.text
        last = response.json()["sequence"]
    rankings = running.wait_until_projected(last, SCOPE)
    table = [
        (row["rank_label"], row["unit_id"], row["total"], row["pillars"]["1"], row["pillars"]["3"])
        for row in rankings["rankings"]
    ]
    # da-nang 10 + 3.33 + 10 + 10 = 33.33; gia-lai 10 + 7.5 + 4 + 9 = 30.5; binh-dinh 0 + 10 + 10 + 8.5 = 28.5;
    # the other 60 provinces of 2024 have no data: 0, tied 4th of 63
    assert table[:3] == [
        ("1/63", "da-nang", "33.33", "13.33", "20.00"),
        ("2/63", "gia-lai", "30.50", "17.50", "13.00"),
        ("3/63", "binh-dinh", "28.50", "20.00", "8.50"),
    ]
    assert len(table) == PROVINCES_2024
    assert {(row[0], row[2]) for row in table[3:]} == {("4/63", "0.00")}
    assert {row["status"] for row in rankings["rankings"][3:]} == {"missing"}
    assert [row["unit_name_vi"] for row in rankings["rankings"][:3]] == ["Đà Nẵng", "Gia Lai", "Bình Định"]
    assert rankings["max_points"] == "1000.00"
    assert [pillar["code"] for pillar in rankings["pillars"]] == [
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
        "8",
    ]  # 9 is not scored
    card = running.reporting.get("/v1/units/gia-lai/scorecard", params=SCOPE).json()
    awareness = next(pillar for pillar in card["pillars"] if pillar["code"] == "1")
    assert (awareness["points"], awareness["max_points"], awareness["points_missing"]) == ("17.50", "100", "82.50")
    directives = next(child for child in awareness["children"] if child["code"] == "1.3")
    assert (directives["points"], directives["status"], directives["inputs"]) == (
        "7.50",
        "scored",
        {"a": "3", "b": "4"},
    )
    assert directives["lead_agency"] == "Sở TT&TT; Văn phòng UBND tỉnh"
    missing = next(child for child in awareness["children"] if child["code"] == "1.1")
    assert (missing["points"], missing["status"]) == ("0.00", "missing")
    smart_city = next(pillar for pillar in card["pillars"] if pillar["code"] == "9")
    assert (smart_city["scored"], smart_city["points"]) == (False, None)
    assert card["unit_name_vi"] == "Gia Lai" and card["rank_label"] == "2/63"


def test_the_catalogue_endpoints_serve_the_five_official_catalogues(running: RunningSystem) -> None:
    listed = {entry["id"]: entry for entry in running.ingest.get("/v1/catalogues").json()}
    assert {
        "vn-smartcity-kpi",
        "binhdinh-smartcity-kpi",
        "hcmc-dti-departments",
        "hcmc-dti-districts",
        "vn-dti-province",
    } <= set(listed)
    assert listed["vn-dti-province"]["nodes"] == 133
    tree = running.ingest.get("/v1/catalogues/vn-dti-province/versions/1.0").json()
    assert (
        tree["total_max_points"] == "1000"
        and len(tree["nodes"]) == 133
        and tree["reference_results"][0]["rank"] == "62/63"
    )
    node = running.ingest.get("/v1/catalogues/hcmc-dti-districts/versions/1.0/indicators/3.3").json()
    assert node["rule"]["tiers"][1] == {"at_least": "0.5", "points": "15", "otherwise": False}
    assert running.ingest.get("/v1/catalogues/vn-dti-province/versions/9.9").status_code == 404
    assert running.ingest.get("/v1/catalogues/vn-dti-province/versions/1.0/indicators/99.9").status_code == 404


def register_a_city(running: RunningSystem) -> str:
    """The KPI set's peer group `cities` is bundled with no unit (3098/BTTTT-KHCN names none): an admin registers
    the urban areas that report. Thủ Đức is a city of a city (kind `city`), entered as in the hcmc-districts list."""
    thu_duc = bundled_peer_group("hcmc-districts").unit("thu-duc")
    assert thu_duc is not None
    document = {
        **bundled_peer_group("cities").document(),
        "version": "2",
        "sources": [
            {
                "document": "Đăng ký đô thị báo cáo theo Bộ chỉ số đô thị thông minh (thử nghiệm đầu cuối)",
                "notes": "Test registration: the unit entry is the one of the hcmc-districts list.",
            }
        ],
        "units": [thu_duc.model_dump(mode="json", exclude_none=True)],
    }
    admin = {"Authorization": f"Bearer {running.keys['admin']}"}
    reporter = {"Authorization": f"Bearer {running.keys['thu-duc']}"}
    assert running.ingest.post("/v1/peer-groups", json=document, headers=reporter).status_code == 403
    registered = running.ingest.post("/v1/peer-groups", json=document, headers=admin)
    assert registered.status_code == 201, registered.text
    return thu_duc.id


def test_a_kpi_set_has_values_on_its_scorecard_and_no_ranking(running: RunningSystem) -> None:
    scope = {"catalogue": "vn-smartcity-kpi", "version": "1.0", "period": 2024}
    body = {"catalogue_id": "vn-smartcity-kpi", "catalogue_version": "1.0", "period": 2024, "unit_id": "thu-duc"}
    growth = {**body, "period": 2023, "indicator": "L3.N1.PN2.03", "inputs": {"a": 10}}
    refused = running.post_measurement("thu-duc", growth, "kpi-2023-unregistered")
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "unit_id"  # no city registered yet
    city = register_a_city(running)
    assert running.post_measurement(city, growth, "kpi-2023").status_code == 201
    response = running.post_measurement(city, {**body, "indicator": "L3.N1.PN2.03", "inputs": {"a": 12}}, "kpi-2024")
    assert response.status_code == 201, response.text
    sequence = response.json()["sequence"]

    def scored() -> bool:
        answer = running.reporting.get("/v1/units/thu-duc/scorecard", params=scope)
        return answer.status_code == 200 and answer.json()["as_of_sequence"] >= sequence

    running.wait_for(scored)
    card = running.reporting.get("/v1/units/thu-duc/scorecard", params=scope).json()
    nodes = [card["pillars"]]
    found = None
    while nodes and found is None:
        level = nodes.pop()
        found = next((node for node in level if node["code"] == "L3.N1.PN2.03"), None)
        nodes += [node["children"] for node in level if "children" in node]
    assert found is not None and (found["value"], found["status"]) == ("20.00", "scored")  # +20% on last year
    ranking = running.reporting.get("/v1/rankings", params=scope)
    assert ranking.status_code == 422 and ranking.json()["title"] == "No points to rank"
