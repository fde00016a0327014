"""Scoring a unit and a period: statuses, parents as sums, peers, and display rounding."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.scoring import (
    PeerStats,
    RecordedInputs,
    display_points,
    peer_stats,
    score_indicator,
    score_period,
    score_unit,
)

D = Decimal
F = Fraction


def _replace_node(data: dict[str, Any], code: str, **changes: Any) -> dict[str, Any]:
    for node in data["nodes"]:
        if node["code"] == code:
            node.update(changes)
    return data


def _peer_catalogue(mini_data: dict[str, Any], kind: str) -> Catalogue:
    """The mini catalogue with 3.2 (max 20) scored by a peer-relative rule on input a."""
    rule = {"kind": kind, "measure": {"input": "a"}}
    return parse_catalogue(_replace_node(mini_data, "3.2", inputs=[{"name": "a", "type": "number"}], rule=rule))


def _period(recorded, **values: int) -> dict[str, dict[str, RecordedInputs]]:
    return {unit: {"3.2": recorded("3.2", a=value)} for unit, value in values.items()}


# score_indicator


def test_an_indicator_without_data_is_missing_with_zero_points(mini):
    score = score_indicator(mini.nodes_by_code["3.1"], None)
    assert (score.status, score.points, score.max_points, score.event_id) == ("missing", F(0), F(20), None)


def test_a_kpi_indicator_without_data_is_missing_without_points(make_node):
    score = score_indicator(make_node({"kind": "value", "measure": {"input": "a"}}, max_points=None, a="number"), None)
    assert (score.status, score.points, score.max_points) == ("missing", None, None)


def test_a_not_applicable_indicator_gets_max_and_says_why(mini):
    reason = "no industrial parks in the province"
    declared = RecordedInputs("3.1", {}, event_id="ev-7", sequence=7, not_applicable_reason=reason)
    score = score_indicator(mini.nodes_by_code["3.1"], declared)
    assert (score.status, score.points, score.max_points) == ("not_applicable", F(20), F(20))
    assert (score.formula, score.event_id, score.sequence) == (f"not applicable ({reason}) → max", "ev-7", 7)


def test_a_scored_indicator_carries_its_value_formula_and_source_event(mini, recorded):
    measurement = recorded("3.1", sequence=4, a=2, b=5)
    score = score_indicator(mini.nodes_by_code["3.1"], measurement)
    assert (score.status, score.points, score.value) == ("scored", F(10), F(2, 5))
    assert score.formula == "min((2)/(5) = 0.4 / 0.8, 1) × 20 = 10"
    assert (score.event_id, score.sequence, score.inputs) == ("ev-3.1-4", 4, {"a": D(2), "b": D(5)})


YOY_RULE = {
    "kind": "year_over_year",
    "measure": {"numerator": ["a"], "denominator": ["b"]},
    "previous": {"input": "b", "from_input": "a"},
    "full_at": "1.1",
}


def test_a_year_over_year_input_missing_this_period_comes_from_the_previous_period(make_node, recorded):
    node = make_node(YOY_RULE, a="number", b="number")
    catalogue = _catalogue_of(node)
    this_year = {"u1": {"9.9": recorded("9.9", 5, a=105)}}
    last_year = {"u1": {"9.9": recorded("9.9", 2, a=100)}}
    score = score_period(catalogue, this_year, last_year)["u1"].indicators["9.9"]
    # 105/100 = 1.05 of the 1.1 needed for full points: 1.05 / 1.1 × 10
    assert score.points == F(105, 100) / F(11, 10) * 10
    assert score.inputs == {"a": D(105), "b": D(100)}
    assert (score.event_id, score.previous_event_id) == ("ev-9.9-5", "ev-9.9-2")


def test_a_year_over_year_input_reported_this_period_wins_over_the_previous_period(make_node, recorded):
    node = make_node(YOY_RULE, a="number", b="number")
    this_year = {"u1": {"9.9": recorded("9.9", 5, a=110, b=100)}}
    last_year = {"u1": {"9.9": recorded("9.9", 2, a=50)}}
    score = score_period(_catalogue_of(node), this_year, last_year)["u1"].indicators["9.9"]
    assert (score.points, score.previous_event_id) == (F(10), None)


def test_a_year_over_year_indicator_without_a_previous_value_scores_zero_as_missing(make_node, recorded):
    node = make_node(YOY_RULE, a="number", b="number")
    score = score_period(_catalogue_of(node), {"u1": {"9.9": recorded("9.9", 5, a=110)}}, {})["u1"].indicators["9.9"]
    assert (score.status, score.points, score.formula) == ("missing", F(0), "input 'b' is missing")


def test_a_kpi_value_indicator_has_a_value_but_no_points(make_node, recorded):
    rule = {"kind": "value", "measure": {"numerator": ["a"], "denominator": ["b"], "percent": True}}
    score = score_indicator(make_node(rule, max_points=None, a="count", b="count"), recorded("9.9", a=3, b=4))
    assert (score.status, score.points, score.value) == ("scored", None, F(75))


# score_unit


def test_parents_are_the_sums_of_their_children_and_the_total_sums_the_pillars(mini, recorded):
    inputs = {
        "1.1": recorded("1.1", a="vice_chair"),
        "1.2": recorded("1.2", a=True),
        "3.1": recorded("3.1", a=2, b=3),
        "3.2": recorded("3.2", a=1, b=3),
    }
    score = score_unit(mini, "gia-lai", inputs)
    assert score.node_points == {"1.1": 5, "1.2": 10, "1": 15, "3.1": F(50, 3), "3.2": F(20, 3), "3": F(70, 3)}
    assert score.total == 15 + F(70, 3)
    assert score.pillar_points(mini) == {"1": F(15), "3": F(70, 3)}


def test_missing_indicators_count_zero_in_their_parent(mini, recorded):
    score = score_unit(mini, "gia-lai", {"1.2": recorded("1.2", a=True)})
    assert {code: s.status for code, s in score.indicators.items()} == {
        "1.1": "missing",
        "1.2": "scored",
        "3.1": "missing",
        "3.2": "missing",
    }
    assert (score.node_points["1"], score.node_points["3"], score.total) == (F(10), F(0), F(10))


def test_a_component_scored_by_sum_of_children_adds_its_data_lines(mini_data, recorded):
    _replace_node(mini_data, "3.2", inputs=[], rule={"kind": "sum_of_children"})
    mini_data["nodes"] += [
        {
            "code": "3.2.1",
            "parent": "3.2",
            "level": "data_line",
            "name_vi": "Dòng 1",
            "max_points": "12",
            "inputs": [{"name": "a", "type": "count"}],
            "rule": {"kind": "count_capped", "input": "a", "points_each": "5"},
        },
        {
            "code": "3.2.2",
            "parent": "3.2",
            "level": "data_line",
            "name_vi": "Dòng 2",
            "max_points": "8",
            "inputs": [{"name": "a", "type": "points"}],
            "rule": {"kind": "direct_points", "input": "a"},
        },
    ]
    catalogue = parse_catalogue(mini_data)
    score = score_unit(catalogue, "u", {"3.2.1": recorded("3.2.1", a=2), "3.2.2": recorded("3.2.2", a=D("6.5"))})
    assert (score.node_points["3.2.1"], score.node_points["3.2.2"]) == (F(10), F(13, 2))
    assert (score.node_points["3.2"], score.node_points["3"], score.total) == (F(33, 2), F(33, 2), F(33, 2))
    assert "3.2" not in score.indicators


def test_an_unscored_pillar_is_left_out_of_the_total_even_with_data(mini_data, recorded):
    mini_data["nodes"] += [
        {"code": "9", "level": "pillar", "name_vi": "Kinh tế số", "max_points": None, "scored": False},
        {
            "code": "9.1",
            "parent": "9",
            "level": "component",
            "name_vi": "Doanh nghiệp số",
            "max_points": "10",
            "scored": False,
            "inputs": [{"name": "a", "type": "boolean"}],
            "rule": {"kind": "yes_no", "input": "a"},
        },
    ]
    catalogue = parse_catalogue(mini_data)
    score = score_unit(catalogue, "u", {"1.2": recorded("1.2", a=True), "9.1": recorded("9.1", a=True)})
    assert score.indicators["9.1"].points == F(10)
    assert (score.total, score.pillar_points(catalogue)) == (F(10), {"1": F(10), "3": F(0)})
    assert "9" not in score.node_points


# display_points


@pytest.mark.parametrize(
    ("points", "shown"),
    [
        (F(1, 8), "0.13"),  # half up, not half even
        (F("2.675"), "2.68"),  # exact, not the binary float 2.67499...
        (F(1, 200), "0.01"),
        (F(4999, 1_000_000), "0.00"),
        (F(1, 3), "0.33"),
        (F(20), "20.00"),
    ],
)
def test_display_points_rounds_half_up_to_two_decimals(points, shown):
    assert display_points(points) == D(shown)


def test_display_points_of_no_points_is_none():
    assert display_points(None) is None


def test_totals_are_summed_from_unrounded_points_not_from_displayed_ones(mini, recorded):
    inputs = {"3.1": recorded("3.1", a=2, b=3), "3.2": recorded("3.2", a=1, b=3)}
    score = score_unit(mini, "u", inputs)
    shown_parts = [display_points(score.node_points[code]) for code in ("3.1", "3.2")]
    assert shown_parts == [D("16.67"), D("6.67")]
    assert sum(shown_parts) == D("23.34")
    assert display_points(score.node_points["3"]) == D("23.33")
    assert display_points(score.total) == D("23.33")


# score_period: peer-relative rules


def test_peer_minmax_over_a_period_gives_max_to_the_best_and_zero_to_the_worst(mini_data, recorded):
    catalogue = _peer_catalogue(mini_data, "peer_minmax")
    scores = score_period(catalogue, _period(recorded, hue=2, hanoi=6, hcm=3))
    assert {unit: s.node_points["3.2"] for unit, s in scores.items()} == {"hue": 0, "hanoi": 20, "hcm": 5}
    assert scores["hcm"].indicators["3.2"].peer == PeerStats(F(2), F(6))


def test_peer_minmax_gives_max_to_every_unit_when_all_values_are_equal(mini_data, recorded):
    catalogue = _peer_catalogue(mini_data, "peer_minmax")
    scores = score_period(catalogue, _period(recorded, hue=4, hanoi=4))
    assert [s.node_points["3.2"] for s in scores.values()] == [F(20), F(20)]


def test_peer_stats_ignore_units_that_are_missing_or_not_applicable(mini_data, recorded):
    catalogue = _peer_catalogue(mini_data, "peer_minmax")
    period = _period(recorded, hue=2, hanoi=6, hcm=4)
    period["danang"] = {"3.2": RecordedInputs("3.2", {}, "ev-na", 9, not_applicable_reason="no data by law")}
    period["camau"] = {"1.2": recorded("1.2", a=True)}
    scores = score_period(catalogue, period)
    assert scores["hcm"].indicators["3.2"].peer == PeerStats(F(2), F(6))
    assert {unit: s.node_points["3.2"] for unit, s in scores.items()} == {
        "hue": 0,
        "hanoi": 20,
        "hcm": 10,
        "danang": 20,
        "camau": 0,
    }
    assert scores["camau"].indicators["3.2"].status == "missing"


def test_relative_to_best_over_a_period_scores_each_unit_against_the_best(mini_data, recorded):
    catalogue = _peer_catalogue(mini_data, "relative_to_best")
    scores = score_period(catalogue, _period(recorded, hue=2, hanoi=8, hcm=6))
    assert {unit: s.node_points["3.2"] for unit, s in scores.items()} == {"hue": 5, "hanoi": 20, "hcm": 15}


def test_a_parts_rule_with_a_peer_minmax_part_is_scored_over_the_period(mini_data, recorded):
    rule = {
        "kind": "parts",
        "parts": [
            {"max_points": "10", "rule": {"kind": "yes_no", "input": "b"}},
            {"max_points": "10", "rule": {"kind": "peer_minmax", "measure": {"input": "a"}}},
        ],
    }
    inputs = [{"name": "a", "type": "number"}, {"name": "b", "type": "boolean"}]
    catalogue = parse_catalogue(_replace_node(mini_data, "3.2", inputs=inputs, rule=rule))
    period = {
        "hue": {"3.2": recorded("3.2", a=2, b=True)},
        "hanoi": {"3.2": recorded("3.2", a=6, b=False)},
        "hcm": {"3.2": recorded("3.2", a=3, b=True)},
    }
    scores = score_period(catalogue, period)
    assert {unit: s.node_points["3.2"] for unit, s in scores.items()} == {"hue": 10, "hanoi": 10, "hcm": F(25, 2)}


def _catalogue_of(node):
    pillar = {"code": "9", "level": "pillar", "name_vi": "Trụ cột", "max_points": "10"}
    return Catalogue.model_validate(
        {
            "id": "t",
            "version": "1",
            "kind": "points",
            "title_vi": "t",
            "peer_group": "p",
            "source": {"document": "t"},
            "nodes": [pillar, {**node.model_dump(mode="json", exclude_none=True), "parent": "9"}],
        }
    )


def test_a_yes_no_kpi_indicator_has_the_value_one_or_zero(make_node, recorded):
    node = make_node({"kind": "value", "measure": {"input": "a"}}, max_points=None, a="boolean")
    yes = score_indicator(node, recorded("9.9", a=True))
    no = score_indicator(node, recorded("9.9", a=False))
    assert (yes.status, yes.value, yes.points) == ("scored", F(1), None)
    assert (no.status, no.value) == ("scored", F(0))


def test_peer_statistics_name_the_events_of_the_lowest_and_highest_units(make_node, recorded):
    node = make_node({"kind": "peer_minmax", "measure": {"input": "a"}}, a="count")
    period = {
        "u1": {"9.9": recorded("9.9", 3, a=5)},
        "u2": {"9.9": recorded("9.9", 1, a=2)},
        "u3": {"9.9": recorded("9.9", 2, a=9)},
        "u4": {"9.9": recorded("9.9", 4, a=9)},
    }
    stats = peer_stats(node, period)
    assert stats == PeerStats(F(2), F(9))
    assert (stats.minimum_event_id, stats.maximum_event_id) == ("ev-9.9-1", "ev-9.9-2")  # ties: the earliest event


def test_peer_statistics_kept_between_calls_are_the_statistics_and_follow_new_inputs(make_node, recorded):
    node = make_node({"kind": "peer_minmax", "measure": {"input": "a"}}, a="count")
    period = {
        "u1": {"9.9": recorded("9.9", 3, a=5)},
        "u2": {"9.9": recorded("9.9", 1, a=2)},
        "u3": {"9.9": recorded("9.9", 2, a=9)},
    }
    measured: dict = {}
    first = peer_stats(node, period, measured)
    assert len(measured) == 3
    period["u2"] = {"9.9": recorded("9.9", 5, a=7)}  # a new measurement: a new object, measured afresh
    again = peer_stats(node, period, measured)
    fresh = peer_stats(node, period)
    assert first == PeerStats(F(2), F(9)) and again == fresh == PeerStats(F(5), F(9))
    assert (again.minimum_event_id, again.maximum_event_id) == (fresh.minimum_event_id, fresh.maximum_event_id)
    assert [value for _, value in measured.values()].count(F(7)) == 1


def test_a_growth_kpi_is_this_year_over_last_year_minus_one_in_percent(make_node, recorded):
    rule = {
        "kind": "year_over_year",
        "measure": {"numerator": ["a"], "denominator": ["b"], "growth": True, "percent": True},
        "previous": {"input": "b", "from_input": "a"},
    }
    node = make_node(rule, max_points=None, a="count", b="count")
    score = score_period(
        _catalogue_of_kpi(node), {"u": {"9.9": recorded("9.9", 5, a=12)}}, {"u": {"9.9": recorded("9.9", 2, a=10)}}
    )
    indicator = score["u"].indicators["9.9"]
    assert (indicator.status, indicator.value, indicator.points) == ("scored", F(20), None)


def _catalogue_of_kpi(node):
    layer = {"code": "L1", "level": "layer", "name_vi": "Tầng"}
    return Catalogue.model_validate(
        {
            "id": "k",
            "version": "1",
            "kind": "kpi",
            "title_vi": "k",
            "peer_group": "cities",
            "source": {"document": "t"},
            "nodes": [layer, {**node.model_dump(mode="json", exclude_none=True), "parent": "L1"}],
        }
    )
