"""Each rule kind of the catalogue format, scored by `rule_points` at its boundaries."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from pydantic import ValidationError

from kpi_core.rules import Measure, Tier, is_peer_relative, rule_input_names
from kpi_core.scoring import InputError, PeerStats, rule_points

D = Decimal
F = Fraction

RATIO = {"kind": "ratio", "numerator": ["a"], "denominator": ["b"]}
CAPPED_RATIO = {**RATIO, "full_at": "0.8"}
TIERS = {
    "kind": "tiers",
    "measure": {"numerator": ["a"], "denominator": ["b"]},
    "tiers": [
        {"above": "0.8", "points": "30"},
        {"at_least": "0.5", "points": "15"},
        {"otherwise": True, "points": "0"},
    ],
}
LEVELS = {
    "kind": "levels",
    "input": "a",
    "levels": [
        {"value": "chair", "points": "10"},
        {"value": "vice_chair", "points": "5"},
        {"value": "other", "points": "0"},
    ],
}
PEER_MINMAX = {"kind": "peer_minmax", "measure": {"input": "a"}}
RELATIVE_TO_BEST = {"kind": "relative_to_best", "measure": {"input": "a"}}


# ratio


def test_plain_ratio_gives_the_share_of_max(make_rule):
    points, value, _ = rule_points(make_rule(RATIO), F(20), {"a": D(3), "b": D(4)})
    assert (points, value) == (F(15), F(3, 4))


def test_plain_ratio_is_capped_at_max_when_the_ratio_exceeds_one(make_rule):
    rule = make_rule({**RATIO, "share": False})
    points, value, _ = rule_points(rule, F(20), {"a": D(5), "b": D(4)})
    assert (points, value) == (F(20), F(5, 4))


def test_ratio_of_sums_divides_the_summed_numerator_by_the_summed_denominator(make_rule):
    rule = make_rule({"kind": "ratio", "numerator": ["a", "b"], "denominator": ["c", "d"]})
    points, value, _ = rule_points(rule, F(20), {"a": D(1), "b": D(2), "c": D(3), "d": D(3)})
    assert (points, value) == (F(10), F(1, 2))


def test_capped_ratio_gives_full_points_exactly_at_the_threshold(make_rule):
    points, value, formula = rule_points(make_rule(CAPPED_RATIO), F(20), {"a": D(4), "b": D(5)})
    assert (points, value) == (F(20), F(4, 5))
    assert formula == "min((4)/(5) = 0.8 / 0.8, 1) × 20 = 20"


def test_capped_ratio_just_below_the_threshold_gives_proportional_points(make_rule):
    points, _, _ = rule_points(make_rule(CAPPED_RATIO), F(20), {"a": D(79), "b": D(100)})
    assert points == F(79, 80) * 20 == F("19.75")


def test_capped_ratio_above_the_threshold_gives_max(make_rule):
    points, value, _ = rule_points(make_rule(CAPPED_RATIO), F(20), {"a": D(9), "b": D(10)})
    assert (points, value) == (F(20), F(9, 10))


def test_ratio_with_zero_numerator_gives_zero_points(make_rule):
    points, value, _ = rule_points(make_rule(CAPPED_RATIO), F(20), {"a": D(0), "b": D(10)})
    assert (points, value) == (F(0), F(0))


def test_ratio_with_zero_denominator_raises_input_error_naming_it(make_rule):
    with pytest.raises(InputError, match="denominator b is zero"):
        rule_points(make_rule(RATIO), F(20), {"a": D(0), "b": D(0)})


def test_ratio_with_a_missing_input_raises_input_error_naming_it(make_rule):
    with pytest.raises(InputError, match="input 'b' is missing"):
        rule_points(make_rule(RATIO), F(20), {"a": D(1)})


# yes_no


@pytest.mark.parametrize(("answer", "points", "value"), [(True, F(10), F(1)), (False, F(0), F(0))])
def test_yes_no_gives_max_for_yes_and_zero_for_no(make_rule, answer, points, value):
    assert rule_points(make_rule({"kind": "yes_no", "input": "a"}), F(10), {"a": answer})[:2] == (points, value)


def test_yes_no_given_a_number_raises_input_error(make_rule):
    with pytest.raises(InputError, match="must be true or false"):
        rule_points(make_rule({"kind": "yes_no", "input": "a"}), F(10), {"a": D(1)})


# tiers


@pytest.mark.parametrize(
    ("a", "b", "points"),
    [
        (81, 100, F(30)),  # > 0.8
        (80, 100, F(15)),  # exactly 0.8 is not "above 0.8"
        (50, 100, F(15)),  # exactly 0.5 is "at least 0.5"
        (49, 100, F(0)),  # otherwise
    ],
)
def test_tiers_match_the_first_tier_from_the_top_above_strict_at_least_inclusive(make_rule, a, b, points):
    got, value, _ = rule_points(make_rule(TIERS), F(30), {"a": D(a), "b": D(b)})
    assert (got, value) == (points, F(a, b))


def test_tiers_without_an_otherwise_tier_give_zero_when_nothing_matches(make_rule):
    rule = make_rule({**TIERS, "tiers": TIERS["tiers"][:2]})
    assert rule_points(rule, F(30), {"a": D(1), "b": D(10)})[0] == F(0)


# levels


@pytest.mark.parametrize(("chosen", "points"), [("chair", F(10)), ("vice_chair", F(5)), ("other", F(0))])
def test_levels_give_the_points_of_the_chosen_level(make_rule, chosen, points):
    assert rule_points(make_rule(LEVELS), F(10), {"a": chosen}) == (points, None, f"a={chosen} → {points}")


def test_levels_with_an_unknown_value_raise_input_error_listing_the_levels(make_rule):
    with pytest.raises(InputError, match=r"input 'a' must be one of \['chair', 'vice_chair', 'other'\]"):
        rule_points(make_rule(LEVELS), F(10), {"a": "deputy"})


# parts


def test_parts_sum_the_points_of_each_part_scored_against_its_own_max(make_rule):
    rule = make_rule(
        {
            "kind": "parts",
            "parts": [
                {"max_points": "6", "rule": RATIO},
                {"max_points": "4", "rule": {"kind": "yes_no", "input": "c"}},
            ],
        }
    )
    points, value, _ = rule_points(rule, F(10), {"a": D(1), "b": D(4), "c": True})
    assert (points, value) == (F(6, 4) + 4, None)


# count_capped


@pytest.mark.parametrize(("count", "points"), [(0, F(0)), (3, F(6)), (5, F(10)), (7, F(10))])
def test_count_capped_gives_points_each_up_to_the_cap(make_rule, count, points):
    rule = make_rule({"kind": "count_capped", "input": "a", "points_each": "2"})
    assert rule_points(rule, F(10), {"a": D(count)})[:2] == (points, F(count))


# direct_points


@pytest.mark.parametrize(("awarded", "points"), [("7.5", F(15, 2)), ("10", F(10)), ("12", F(10))])
def test_direct_points_are_taken_as_assessed_and_capped_at_max(make_rule, awarded, points):
    rule = make_rule({"kind": "direct_points", "input": "a"})
    assert rule_points(rule, F(10), {"a": D(awarded)})[:2] == (points, F(awarded))


# peer_minmax and relative_to_best


@pytest.mark.parametrize(("value", "points"), [(6, F(10)), (2, F(0)), (3, F(5, 2))])
def test_peer_minmax_gives_max_to_the_highest_zero_to_the_lowest_linear_between(make_rule, value, points):
    got, _, _ = rule_points(make_rule(PEER_MINMAX), F(10), {"a": D(value)}, PeerStats(F(2), F(6)))
    assert got == points


def test_peer_minmax_gives_max_to_everyone_when_all_peers_are_equal(make_rule):
    assert rule_points(make_rule(PEER_MINMAX), F(10), {"a": D(4)}, PeerStats(F(4), F(4)))[0] == F(10)


def test_peer_relative_rule_without_peer_values_raises_input_error(make_rule):
    with pytest.raises(InputError, match="without peer values"):
        rule_points(make_rule(PEER_MINMAX), F(10), {"a": D(4)})


@pytest.mark.parametrize(("value", "points"), [(8, F(10)), (6, F(15, 2)), (0, F(0))])
def test_relative_to_best_gives_value_over_best_times_max(make_rule, value, points):
    assert rule_points(make_rule(RELATIVE_TO_BEST), F(10), {"a": D(value)}, PeerStats(F(0), F(8)))[0] == points


def test_relative_to_best_gives_max_when_the_best_value_is_zero(make_rule):
    assert rule_points(make_rule(RELATIVE_TO_BEST), F(10), {"a": D(0)}, PeerStats(F(0), F(0)))[0] == F(10)


# value and survey_scale (KPI catalogues: no points)


def test_value_rule_in_percent_multiplies_the_ratio_by_100_and_gives_no_points(make_rule):
    rule = make_rule({"kind": "value", "measure": {"numerator": ["a"], "denominator": ["b"], "percent": True}})
    assert rule_points(rule, F(0), {"a": D(1), "b": D(8)})[:2] == (F(0), F(25, 2))


def test_value_rule_on_a_single_input_reports_the_input(make_rule):
    rule = make_rule({"kind": "value", "measure": {"input": "a"}})
    assert rule_points(rule, F(0), {"a": D("3.25")}) == (F(0), F(13, 4), "a=3.25")


@pytest.mark.parametrize("step", ["-1", "0", "1", "2"])
def test_survey_scale_accepts_every_step_of_the_scale(make_rule, step):
    rule = make_rule({"kind": "survey_scale", "input": "a"})
    assert rule_points(rule, F(0), {"a": D(step)})[:2] == (F(0), F(step))


@pytest.mark.parametrize("step", ["3", "0.5", "-2"])
def test_survey_scale_value_outside_the_scale_raises_input_error(make_rule, step):
    with pytest.raises(InputError, match="survey scale"):
        rule_points(make_rule({"kind": "survey_scale", "input": "a"}), F(0), {"a": D(step)})


def test_year_over_year_with_full_at_gives_full_points_from_the_threshold(make_rule):
    rule = make_rule(
        {"kind": "year_over_year", "measure": {"numerator": ["a"], "denominator": ["b"]}, "full_at": "0.1"}
    )
    assert rule_points(rule, F(10), {"a": D("0.01"), "b": D("0.2")})[0] == F(5)  # ratio 0.05 of 0.1
    assert rule_points(rule, F(10), {"a": D("0.02"), "b": D("0.2")})[0] == F(10)  # exactly at 0.1
    assert rule_points(rule, F(10), {"a": D("0.9"), "b": D("0.6")})[0] == F(10)


def test_year_over_year_with_tiers_scores_the_change_by_tier(make_rule):
    rule = make_rule(
        {
            "kind": "year_over_year",
            "measure": {"numerator": ["a"], "denominator": ["b"]},
            "tiers": [
                {"at_least": "1.1", "points": "10"},
                {"at_least": "1", "points": "5"},
                {"otherwise": True, "points": "0"},
            ],
        }
    )
    assert rule_points(rule, F(10), {"a": D(110), "b": D(100)})[0] == F(10)
    assert rule_points(rule, F(10), {"a": D(109), "b": D(100)})[0] == F(5)
    assert rule_points(rule, F(10), {"a": D(99), "b": D(100)})[0] == F(0)


# the rule models themselves


def test_a_tier_with_two_conditions_is_refused():
    with pytest.raises(ValidationError, match="exactly one of above, at_least, otherwise"):
        Tier(above=D("0.5"), at_least=D("0.5"), points=D(1))


def test_a_measure_that_is_both_an_input_and_a_ratio_is_refused():
    with pytest.raises(ValidationError, match="cannot be both"):
        Measure(input="a", numerator=("b",), denominator=("c",))


def test_a_measure_with_neither_an_input_nor_a_full_ratio_is_refused():
    with pytest.raises(ValidationError, match="either"):
        Measure(numerator=("a",))


def test_rule_input_names_lists_every_input_once_in_order_through_parts(make_rule):
    rule = make_rule(
        {
            "kind": "parts",
            "parts": [
                {"max_points": "5", "rule": {"kind": "ratio", "numerator": ["b", "a"], "denominator": ["c", "a"]}},
                {"max_points": "5", "rule": {"kind": "count_capped", "input": "d", "points_each": "1"}},
                {"max_points": "5", "rule": {"kind": "yes_no", "input": "b"}},
            ],
        }
    )
    assert rule_input_names(rule) == ("b", "a", "c", "d")


def test_a_rule_is_peer_relative_when_it_or_one_of_its_parts_compares_units(make_rule):
    with_peer_part = make_rule(
        {"kind": "parts", "parts": [{"max_points": "5", "rule": RATIO}, {"max_points": "5", "rule": PEER_MINMAX}]}
    )
    assert [is_peer_relative(r) for r in (make_rule(PEER_MINMAX), make_rule(RELATIVE_TO_BEST), with_peer_part)] == [
        True,
        True,
        True,
    ]
    assert [is_peer_relative(r) for r in (make_rule(RATIO), make_rule(TIERS), None)] == [False, False, False]
