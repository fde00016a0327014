"""Checking raw measurement inputs against an indicator's declared inputs and rule."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from kpi_core.inputs import typed_inputs
from kpi_core.measurements import FieldError, check_inputs

D = Decimal


def _stored(values: dict[str, Any]) -> dict[str, str | bool]:
    """Inputs as MeasurementRecorded stores them: numbers as strings."""
    return {name: str(value) if isinstance(value, Decimal) else value for name, value in values.items()}


def test_valid_inputs_are_normalised_to_exact_decimals(mini):
    values, errors = check_inputs(mini.nodes_by_code["3.1"], {"a": 12, "b": "40"})
    assert (values, errors) == ({"a": D(12), "b": D(40)}, [])
    assert all(type(value) is Decimal for value in values.values())


def test_a_float_input_becomes_the_decimal_it_prints_as(make_node):
    values, errors = check_inputs(make_node({"kind": "direct_points", "input": "a"}, a="points"), {"a": 7.1})
    assert (values, errors) == ({"a": D("7.1")}, [])


def test_a_whole_count_written_with_decimals_is_accepted(mini):
    assert check_inputs(mini.nodes_by_code["3.1"], {"a": "3.0", "b": 4}) == ({"a": D("3.0"), "b": D(4)}, [])


def test_an_unknown_input_name_is_refused_naming_it(mini):
    values, errors = check_inputs(mini.nodes_by_code["3.1"], {"a": 1, "b": 2, "c": 3})
    assert errors == [FieldError("inputs.c", "3.1 has no input 'c'")]
    assert values == {"a": D(1), "b": D(2)}


def test_a_missing_required_input_is_refused_naming_the_rule(mini):
    assert check_inputs(mini.nodes_by_code["3.1"], {"a": 1})[1] == [
        FieldError("inputs.b", "input 'b' is required by the ratio rule")
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (-1, "cannot be negative"),
        ("1.5", "a count must be a whole number"),
        ("many", "'many' is not a number"),
        ([1], "must be a number"),
        (True, "must be a number"),
        ("NaN", "must be a finite number"),
        ("Infinity", "must be a finite number"),
    ],
)
def test_a_count_that_is_not_a_whole_non_negative_number_is_refused(mini, raw, message):
    assert check_inputs(mini.nodes_by_code["3.1"], {"a": raw, "b": 4})[1] == [FieldError("inputs.a", message)]


@pytest.mark.parametrize("raw", [1, "true", None])
def test_a_boolean_input_given_anything_but_true_or_false_is_refused(mini, raw):
    assert check_inputs(mini.nodes_by_code["1.2"], {"a": raw}) == (
        {},
        [FieldError("inputs.a", "must be true or false")],
    )


def test_a_category_outside_the_rule_levels_is_refused_listing_them(mini):
    assert check_inputs(mini.nodes_by_code["1.1"], {"a": "deputy"}) == (
        {},
        [FieldError("inputs.a", "must be one of ['chair', 'other', 'vice_chair']")],
    )


def test_a_category_among_the_rule_levels_is_kept_as_text(mini):
    assert check_inputs(mini.nodes_by_code["1.1"], {"a": "vice_chair"}) == ({"a": "vice_chair"}, [])


def test_a_share_whose_numerator_exceeds_its_denominator_is_refused(mini):
    assert check_inputs(mini.nodes_by_code["3.1"], {"a": 5, "b": 4})[1] == [
        FieldError("inputs.a", "the ratio rule is a share: a (5) exceeds b (4)")
    ]


def test_a_ratio_that_is_not_a_share_may_exceed_one(make_node):
    node = make_node({"kind": "ratio", "numerator": ["a"], "denominator": ["b"], "share": False}, a="count", b="count")
    assert check_inputs(node, {"a": 5, "b": 4}) == ({"a": D(5), "b": D(4)}, [])


def test_a_zero_denominator_is_refused(mini):
    assert check_inputs(mini.nodes_by_code["3.1"], {"a": 0, "b": 0})[1] == [
        FieldError("inputs.b", "the ratio rule divides by b, which is zero")
    ]


def test_a_zero_denominator_inside_a_part_is_refused(make_node):
    rule = {
        "kind": "parts",
        "parts": [
            {"max_points": "5", "rule": {"kind": "yes_no", "input": "c"}},
            {
                "max_points": "5",
                "rule": {
                    "kind": "tiers",
                    "measure": {"numerator": ["a"], "denominator": ["b"]},
                    "tiers": [{"otherwise": True, "points": "5"}],
                },
            },
        ],
    }
    node = make_node(rule, a="count", b="count", c="boolean")
    assert check_inputs(node, {"a": 1, "b": 0, "c": True})[1] == [
        FieldError("inputs.b", "the tiers rule divides by b, which is zero")
    ]


def test_every_problem_is_listed_each_naming_its_input(mini):
    errors = check_inputs(mini.nodes_by_code["3.1"], {"a": -1, "c": 1})[1]
    assert errors == [
        FieldError("inputs.a", "cannot be negative"),
        FieldError("inputs.c", "3.1 has no input 'c'"),
        FieldError("inputs.b", "input 'b' is required by the ratio rule"),
    ]


def test_a_node_scored_from_its_children_takes_no_inputs(make_node):
    node = make_node({"kind": "sum_of_children"})
    assert check_inputs(node, {"a": 1}) == (
        {},
        [FieldError("indicator", "9.9 is scored from its children; post its children")],
    )


def test_a_survey_answer_of_minus_one_on_the_default_scale_is_accepted(make_node):
    node = make_node({"kind": "survey_scale", "input": "a"}, max_points=None, a="number")
    assert check_inputs(node, {"a": -1}) == ({"a": D(-1)}, [])


# typed_inputs: back from the stored event shape


@pytest.mark.parametrize(
    ("code", "raw"),
    [("3.1", {"a": 12, "b": "40.0"}), ("1.1", {"a": "chair"}), ("1.2", {"a": False})],
)
def test_typed_inputs_round_trip_the_checked_inputs_through_their_stored_form(mini, code, raw):
    node = mini.nodes_by_code[code]
    values, errors = check_inputs(node, raw)
    assert errors == []
    assert typed_inputs(node, _stored(values)) == values


def test_typed_inputs_keep_categories_and_booleans_and_read_numbers_exactly(make_node):
    node = make_node({"kind": "yes_no", "input": "b"}, a="category", b="boolean", c="number")
    assert typed_inputs(node, {"a": "chair", "b": True, "c": "0.1"}) == {"a": "chair", "b": True, "c": D("0.1")}


def test_a_year_over_year_input_the_previous_period_supplies_may_be_left_out(make_node):
    rule = {
        "kind": "year_over_year",
        "measure": {"numerator": ["a"], "denominator": ["b"]},
        "previous": {"input": "b", "from_input": "a"},
    }
    node = make_node(rule, a="percent", b="percent")
    assert check_inputs(node, {"a": "0.6"}) == ({"a": Decimal("0.6")}, [])
    assert check_inputs(node, {"b": "0.6"})[1] == [
        FieldError("inputs.a", "input 'a' is required by the year_over_year rule")
    ]


def test_an_implausibly_large_number_is_refused(make_node):
    node = make_node({"kind": "ratio", "numerator": ["a"], "denominator": ["b"]}, a="count", b="count")
    _, errors = check_inputs(node, {"a": 10**400, "b": 10**401})
    assert [error.field for error in errors] == ["inputs.a", "inputs.b"]


def test_a_node_works_out_what_its_checks_read_once_and_every_check_is_independent(mini):
    """A set checks thousands of rows against a few hundred nodes: what a node's rule and inputs
    say is read once, and nothing one check finds (a value, an error) is seen by the next."""
    node = mini.nodes_by_code["3.1"]
    assert node.input_checks is node.input_checks
    assert check_inputs(node, {"a": 50, "b": 40})[1] != []
    assert check_inputs(node, {"a": 12, "b": "40"}) == ({"a": D(12), "b": D(40)}, [])
    assert check_inputs(node, {"b": "40"}) == (
        {"b": D(40)},
        [FieldError("inputs.a", "input 'a' is required by the ratio rule")],
    )
    assert node.model_dump() == mini.nodes_by_code["3.1"].model_copy().model_dump()
