"""Several HCMC districts scored on the official district catalogue, checked against hand computation.

Expected points are computed by hand from Appendix II of decision 79/QĐ-UBND (see each comment).
The ranking has the 22 registered units of 2024; the Min-Max peers are only the units that reported 5.1.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e
SCOPE = {"catalogue": "hcmc-dti-districts", "version": "1.0", "period": 2024}

SUBMISSIONS: list[tuple[str, str, dict[str, Any]]] = [
    # 5.1 Min-Max on approved information systems, max 10: counts 12, 4, 20, 4 → min 4, max 20
    ("quan-1", "5.1", {"a": 12}),  # (12 − 4) / (20 − 4) × 10 = 5
    ("quan-3", "5.1", {"a": 4}),  # 0
    ("thu-duc", "5.1", {"a": 20}),  # 10
    ("binh-chanh", "5.1", {"a": 4}),  # 0
    # 1.1 head of the steering committee, max 10: chair 10, deputy 5
    ("quan-1", "1.1", {"a": "secretary_or_chair"}),
    ("quan-3", "1.1", {"a": "deputy"}),
    # 3.3 tiers, max 30: > 80% → 30; 50–80% → 15 (the source prints 150); < 50% → 0
    ("quan-1", "3.3", {"a": "0.8"}),  # exactly 80% is not "Trên 80%": 15
    ("quan-3", "3.3", {"a": "0.81"}),  # 30
    ("thu-duc", "3.3", {"a": "0.49"}),  # 0
    # 3.4 two halves of 15: a/b capped (a may exceed b) + c/d
    ("thu-duc", "3.4", {"a": 9, "b": 7, "c": 3, "d": 6}),  # 15 + 7.5 = 22.5
    # 6.1 parts 4/5 and 1/5 of 10
    ("binh-chanh", "6.1", {"a": True, "b": False}),  # 8
    # 8.5 one point per activity, at most 20
    ("binh-chanh", "8.5", {"a": 27}),  # 20
]


def test_districts_are_scored_as_the_decision_defines_and_peer_scores_follow_corrections(
    running: RunningSystem,
) -> None:
    last = 0
    for index, (unit, indicator, inputs) in enumerate(SUBMISSIONS):
        body = {"catalogue_id": "hcmc-dti-districts", "catalogue_version": "1.0", "period": 2024}
        body |= {"unit_id": unit, "indicator": indicator, "inputs": inputs}
        response = running.post_measurement(unit, body, f"districts-{index}")
        assert response.status_code == 201, response.text
        last = response.json()["sequence"]
    rankings = running.wait_until_projected(last, SCOPE)
    totals = {row["unit_id"]: (row["rank_label"], row["total"]) for row in rankings["rankings"]}
    # quan-1: 5 + 10 + 15 = 30; quan-3: 0 + 5 + 30 = 35; thu-duc: 10 + 0 + 22.5 = 32.5; binh-chanh: 0 + 8 + 20 = 28;
    # the 18 other registered units report nothing: 0, tied 5th of 22
    reporting = ("quan-3", "thu-duc", "quan-1", "binh-chanh")
    assert {unit: totals[unit] for unit in reporting} == {
        "quan-3": ("1/22", "35.00"),
        "thu-duc": ("2/22", "32.50"),
        "quan-1": ("3/22", "30.00"),
        "binh-chanh": ("4/22", "28.00"),
    }
    assert len(totals) == 22
    assert {totals[unit] for unit in totals if unit not in reporting} == {("5/22", "0.00")}
    assert rankings["max_points"] == "660.00"

    def score(unit: str, code: str) -> dict[str, Any]:
        return running.scoring.get(f"/v1/units/{unit}/scores/{code}", params=SCOPE).json()

    running.wait_for(lambda: score("binh-chanh", "*").get("as_of_sequence", 0) >= last - 2)
    explained = score("quan-1", "5.1")
    assert explained["points"] == "5.00"
    peer = explained["explanation"]["peer"]
    assert (peer["min"], peer["max"]) == ("4", "20")
    assert peer["min_event_id"] and peer["max_event_id"]  # the events that set the minimum and the maximum
    # thu-duc corrects its count down to 8: the maximum is now quan-1's 12, and everyone's 5.1 moves
    response = running.post_measurement(
        "thu-duc",
        {
            **{"catalogue_id": "hcmc-dti-districts", "catalogue_version": "1.0", "period": 2024},
            "unit_id": "thu-duc",
            "indicator": "5.1",
            "inputs": {"a": 8},
        },
        "districts-correction",
    )
    corrected = running.wait_until_projected(response.json()["sequence"], SCOPE)
    pillar_5 = {row["unit_id"]: row["pillars"]["5"] for row in corrected["rankings"]}
    # (12 − 4)/(12 − 4) × 10 = 10 for quan-1; (8 − 4)/8 × 10 = 5 for thu-duc; 0 for the others
    # (the 18 silent units included: they are not peers and score 0)
    assert {unit: pillar_5[unit] for unit in reporting} == {
        "quan-1": "10.00",
        "thu-duc": "5.00",
        "quan-3": "0.00",
        "binh-chanh": "0.00",
    }
    assert {pillar_5[unit] for unit in pillar_5 if unit not in reporting} == {"0.00"}
    running.wait_for(lambda: score("quan-1", "5.1").get("points") == "10.00")
    corrected_peer = score("quan-1", "5.1")["explanation"]["peer"]
    assert (corrected_peer["min"], corrected_peer["max"]) == ("4", "12")
    assert corrected_peer["max_event_id"] != peer["max_event_id"]  # quan-1's own event now sets the maximum
