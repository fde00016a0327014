"""A node's trend, the pure parts: which node a code names, one period's figures (points, rank in the node,
the peer median and best, each line with its own figures), and its CSV rows (text never a formula)."""

from __future__ import annotations

import csv
import io
from fractions import Fraction
from typing import Any

import pytest

from kpi_common.problems import Problem
from kpi_core.catalogue import Catalogue
from kpi_core.ranking import rank_units
from kpi_core.scoring import IndicatorScore, UnitScore, unit_score_of
from kpi_core.units import Unit
from kpi_reporting import trends, views
from kpi_reporting.entrypoints.api.routes import exports


def scored(catalogue: Catalogue, unit: str, points: dict[str, str], value: str | None = None) -> UnitScore:
    """A unit's scores with these points per leaf (pillars and the total summed), 3.1 carrying `value`."""
    leaves = {code: Fraction(given) for code, given in points.items()}
    node_points = dict(leaves)
    for code, given in leaves.items():
        pillar = code.split(".")[0]
        node_points[pillar] = node_points.get(pillar, Fraction(0)) + given
    indicators = {
        code: IndicatorScore(
            code, "scored", given, Fraction(20), Fraction(value) if value is not None and code == "3.1" else None
        )
        for code, given in leaves.items()
    }
    return unit_score_of(catalogue, unit, indicators, node_points, sum(leaves.values(), Fraction(0)))


def period_result(catalogue: Catalogue, scores: dict[str, UnitScore]) -> views.PeriodResult:
    units = {
        unit: Unit(id=unit, name_vi=f"Tỉnh {unit}", code=f"{index:02d}", kind="province")
        for index, unit in enumerate(scores, start=1)
    }
    return views.PeriodResult(
        catalogue, 10, scores, rank_units({unit: score.total for unit, score in scores.items()}), units
    )


def test_a_code_names_a_component_a_pillar_or_the_total(mini: Catalogue) -> None:
    component, pillar, total = (trends.follow(mini, code) for code in ("3.1", "3", trends.TOTAL))
    assert (component.name_vi, component.max_points, component.ranked_as) == (
        "Tỷ lệ hộ gia đình có cáp quang",
        "20",
        None,
    )
    assert (pillar.max_points, pillar.ranked_as) == ("40", "3")  # ranked as /v1/rankings?pillar=3 ranks it
    assert (total.code, total.name_vi, total.max_points, total.ranked_as) == ("_T", "Tổng điểm", "60", "")


@pytest.mark.parametrize("code", ["9.9", "", "*", "total"])
def test_a_code_the_catalogue_does_not_score_is_refused_naming_indicator(mini: Catalogue, code: str) -> None:
    with pytest.raises(Problem) as refused:
        trends.follow(mini, code)
    assert (refused.value.status, refused.value.title) == (422, "Unknown indicator")
    assert refused.value.errors == [{"field": "indicator", "message": code}]


def test_a_period_ranks_the_node_with_shared_ranks_and_gives_the_peer_median_and_best(mini: Catalogue) -> None:
    result = period_result(
        mini,
        {
            "a": scored(mini, "a", {"3.1": "15", "1.2": "10"}, value="0.6"),
            "b": scored(mini, "b", {"3.1": "15"}),
            "c": scored(mini, "c", {"3.1": "20"}),
            "d": scored(mini, "d", {"1.2": "10"}),
        },
    )
    lines = [{"unit_id": "a", "relation": "self"}]
    found = trends.period_figures(trends.follow(mini, "3.1"), 2024, result, ["a", "b", "c", "d"], lines)
    assert (found["period"], found["units_ranked"], found["peer_median"], found["peer_best"]) == (
        2024,
        4,
        "15.00",  # 0, 15, 15, 20
        "20.00",
    )
    [line] = found["lines"]
    assert (line["points"], line["value"], line["status"]) == ("15.00", "0.60", "scored")
    assert (line["rank"], line["rank_label"]) == (2, "2/4")  # tied with b: both 2nd, c 1st
    assert (line["unit_name_vi"], line["unit_code"]) == ("Tỉnh a", "01")  # the registry's, the line had none
    total = trends.period_figures(trends.follow(mini, trends.TOTAL), 2024, result, ["a", "b", "c", "d"], lines)
    [whole] = total["lines"]
    assert (whole["points"], whole["rank_label"], total["peer_best"]) == ("25.00", "1/4", "25.00")
    assert whole["status"] is None and whole["value"] is None  # a sum has neither


def test_each_unit_standing_for_the_line_has_its_own_figures_and_a_ranking_given_is_used(mini: Catalogue) -> None:
    """Across a merger the predecessors are each shown with their own points and rank, never summed; the
    total's and a pillar's ranks come from the ranking the API serves when given."""
    result = period_result(
        mini, {"old-1": scored(mini, "old-1", {"3.1": "5"}), "old-2": scored(mini, "old-2", {"3.2": "12"})}
    )
    lines: list[dict[str, Any]] = [
        {"unit_id": "old-1", "relation": "predecessor", "unit_name_vi": "Cũ 1", "unit_name_en": None, "unit_code": "1"},
        {"unit_id": "old-2", "relation": "predecessor"},
        {"unit_id": "gone", "relation": "predecessor"},  # no scores in the period: shown, not ranked
    ]
    ranks = {"old-1": (2, "2/2"), "old-2": (1, "1/2")}
    found = trends.period_figures(trends.follow(mini, "3"), 2024, result, ["old-1", "old-2"], lines, ranks)
    shown = [(line["unit_id"], line["relation"], line["points"], line["rank_label"]) for line in found["lines"]]
    assert shown == [
        ("old-1", "predecessor", "5.00", "2/2"),
        ("old-2", "predecessor", "12.00", "1/2"),
        ("gone", "predecessor", None, None),
    ]
    assert found["lines"][0]["unit_name_vi"] == "Cũ 1"  # the line's own names (the ranking's) are kept
    assert (found["peer_median"], found["peer_best"]) == ("8.50", "12.00")


def test_the_csv_names_each_unit_and_never_writes_a_formula() -> None:
    node: dict[str, Any] = {
        "code": "3.1", "name_vi": "Tỷ lệ hộ gia đình có cáp quang", "name_en": None, "max_points": "20",
        "periods": [
            {"period": 2024, "units_ranked": 63, "peer_median": "0.00", "peer_best": "20.00",
             "lines": [{"unit_id": "da-nang", "unit_name_vi": "=HYPERLINK(\"x\")", "unit_code": "48",
                        "relation": "predecessor", "points": "-2.50", "value": "0.60", "status": "scored",
                        "rank": 3, "rank_label": "3/63"}]},
        ],
    }  # fmt: skip
    answer = exports.csv_download([exports.TREND_HEADER, *exports.trend_rows(node)], "trend.csv")
    rows = list(csv.reader(io.StringIO(bytes(answer.body).decode().lstrip("\ufeff"))))
    assert rows[0][:4] == ["Năm (Period)", "Mã đơn vị (Unit id)", "Mã thống kê (Unit code)", "Đơn vị (Unit)"]
    assert rows[1] == [
        "2024", "da-nang", "48", "'=HYPERLINK(\"x\")", "predecessor", "3.1", "Tỷ lệ hộ gia đình có cáp quang",
        "-2.50", "20", "scored", "0.60", "3/63", "0.00", "20.00",
    ]  # fmt: skip
