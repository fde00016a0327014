"""The unit registry and the integrity rules of an assessment, in the pure core."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal as D
from importlib import resources
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kpi_core.assessment import (
    LatestVerification,
    missing_decisions,
    not_applicable_errors,
    publication_errors,
    supersedes_error,
)
from kpi_core.catalogue import Catalogue, Node
from kpi_core.measurements import check_inputs, parse_number
from kpi_core.scoring import score_period
from kpi_core.units import PeerGroupInvalid, UnitRegistry, parse_peer_group, reference_date


def bundled(name: str) -> dict[str, Any]:
    text = resources.files("kpi_core").joinpath("unit_lists", f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def registry() -> UnitRegistry:
    groups = {name: parse_peer_group(bundled(name)) for name in ("provinces", "hcmc-districts", "binh-dinh")}
    return UnitRegistry(groups)


def test_the_provinces_are_63_to_mid_2025_and_34_after(registry: UnitRegistry) -> None:
    assert len(registry.members("provinces", 2024)) == 63
    assert len(registry.members("provinces", 2025)) == 34
    assert len(registry.group("provinces").members(date(2025, 6, 30))) == 63  # type: ignore[union-attr]


def test_the_34_succeed_exactly_the_63(registry: UnitRegistry) -> None:
    group = registry.group("provinces")
    assert group is not None
    before = {unit.id for unit in registry.members("provinces", 2024)}
    after = registry.members("provinces", 2025)
    covered = set()
    for unit in after:
        covered |= {earlier.id for earlier in group.predecessors(unit.id)} or {unit.id}
    assert covered == before


def test_a_merged_unit_that_keeps_a_name_is_a_new_unit(registry: UnitRegistry) -> None:
    group = registry.group("provinces")
    assert group is not None
    successor = group.unit("gia-lai-2025")
    assert successor is not None and successor.name_vi == "Gia Lai"
    assert set(successor.predecessors) == {"gia-lai", "binh-dinh"}
    assert [unit.id for unit in group.successors("binh-dinh")] == ["gia-lai-2025"]


def test_a_units_line_is_carried_by_its_predecessors_before_it_and_its_successor_after(
    registry: UnitRegistry,
) -> None:
    def carried(unit_id: str, period: int) -> set[tuple[str, str]]:
        return {(unit.id, relation) for unit, relation in registry.standing_for("provinces", unit_id, period)}

    assert carried("gia-lai-2025", 2025) == {("gia-lai-2025", "self")}
    assert carried("gia-lai-2025", 2024) == {("gia-lai", "predecessor"), ("binh-dinh", "predecessor")}
    assert carried("binh-dinh", 2024) == {("binh-dinh", "self")}
    assert carried("binh-dinh", 2025) == {("gia-lai-2025", "successor")}
    assert carried("hue", 2024) == {("thua-thien-hue", "predecessor")}  # renamed 2025-01-01, not merged
    assert carried("quan-33", 2024) == set()


def test_membership_errors_name_the_group_and_the_successor(registry: UnitRegistry) -> None:
    assert registry.membership_error("provinces", 2024, "gia-lai") is None
    moved = registry.membership_error("provinces", 2025, "gia-lai")
    assert moved is not None and "gia-lai-2025" in moved
    typo = registry.membership_error("hcmc-districts", 2024, "quan-33")
    assert typo is not None and "22 units" in typo
    assert registry.membership_error("hcmc-districts", 2025, "quan-1") is not None  # the district level ended
    assert registry.membership_error("nobody", 2024, "x") == "the peer group nobody is not registered"


def test_the_reference_day_is_the_end_of_the_year_unless_given() -> None:
    assert reference_date(2025) == date(2025, 12, 31)
    assert reference_date(2025, "06-30") == date(2025, 6, 30)


def test_a_unit_list_with_broken_successions_is_refused() -> None:
    data = bundled("binh-dinh")
    data["units"] = [*data["units"], {"id": "new", "name_vi": "Mới", "kind": "province", "predecessors": ["ghost"]}]
    with pytest.raises(PeerGroupInvalid) as refused:
        parse_peer_group(data)
    assert refused.value.defects == ["unit new: predecessor ghost is not in the list"]


def test_ranking_the_peer_group_scores_silent_units_zero_and_ignores_outsiders(mini: Catalogue) -> None:
    from tests.unit.conftest import _recorded

    inputs = {"gia-lai": {"3.1": _recorded("3.1", a=50, b=100)}, "intruder": {"3.1": _recorded("3.1", a=1, b=100)}}
    scores = score_period(mini, inputs, units=["gia-lai", "kon-tum"])
    assert set(scores) == {"gia-lai", "kon-tum"}
    assert scores["kon-tum"].total == 0


@pytest.mark.parametrize(
    ("sent", "expected"),
    [("45%", D("0.45")), ("0,45", D("0.45")), ("0.45", D("0.45")), (1, D(1))],
)
def test_shares_accept_the_forms_people_type(make_node: Callable[..., Node], sent: Any, expected: D) -> None:
    node = make_node({"kind": "ratio", "numerator": ["a"], "denominator": ["b"]}, a="percent", b="percent")
    values, errors = check_inputs(node, {"a": sent, "b": "1"})
    assert (values["a"], errors) == (expected, [])


@pytest.mark.parametrize("sent", [45, "80", "1.01", "-0.1"])
def test_a_share_outside_zero_to_one_is_refused(make_node: Callable[..., Node], sent: Any) -> None:
    node = make_node(
        {"kind": "tiers", "measure": {"input": "a"}, "tiers": [{"otherwise": True, "points": "0"}]}, a="percent"
    )
    _, errors = check_inputs(node, {"a": sent})
    assert [error.field for error in errors] == ["inputs.a"]


@given(st.integers(min_value=-(10**16), max_value=10**16), st.sampled_from(["number", "count", "percent", "amount"]))
def test_a_whole_number_sent_as_a_number_reads_as_its_text_does(sent: int, kind: str) -> None:
    as_number, as_text = parse_number(sent, kind), parse_number(str(sent), kind)
    assert as_number == as_text and type(as_number) is type(as_text)
    if isinstance(as_number, D):
        assert isinstance(as_text, D) and as_number.as_tuple() == as_text.as_tuple()


def test_amounts_are_never_negative_and_numbers_are_bounded() -> None:
    assert parse_number("1E-3000000") == "is implausibly small (write 0, or a value of at least 1E-15)"
    assert isinstance(parse_number("1" * 31), str)
    assert parse_number("1,5", "count") != D("1.5")  # ambiguous for a count
    assert parse_number("1,5") == D("1.5")
    # an exponent beyond the decimal context's range is refused, not an Overflow (a 500 before)
    assert parse_number("1E+3000000") == "is implausibly large (at most 1E+15)"
    assert parse_number("-1E+3000000") == "is implausibly large (at most 1E+15)"
    zero = parse_number("0E+3000000")
    assert zero == 0 and isinstance(zero, D) and zero.as_tuple().exponent == 0


def test_an_amount_below_zero_is_refused(make_node: Callable[..., Node]) -> None:
    node = make_node({"kind": "count_capped", "input": "a", "points_each": "1"}, a="number")
    _, errors = check_inputs(node, {"a": -1})
    assert [(error.field, error.message) for error in errors] == [("inputs.a", "cannot be negative")]


def test_a_gated_tier_derives_the_band_from_the_count(make_node: Callable[..., Node]) -> None:
    rule = {
        "kind": "tiers",
        "gate": "a",
        "measure": {"input": "b"},
        "tiers": [
            {"at_least": "20", "points": "10"},
            {"at_least": "10", "points": "5"},
            {"otherwise": True, "points": "2.5"},
        ],
    }
    node = make_node(rule, a="boolean", b="count")
    assert check_inputs(node, {"a": False}) == ({"a": False}, [])  # no section: its count is not needed
    assert [error.field for error in check_inputs(node, {"a": True})[1]] == ["inputs.b"]


def test_a_constant_is_filled_in_and_another_value_refused(make_node: Callable[..., Node]) -> None:
    node = make_node({"kind": "ratio", "numerator": ["a"], "denominator": ["b"]}, a="count", b="count")
    node = node.model_copy(update={"inputs": (node.inputs[0], node.inputs[1].model_copy(update={"constant": D(7)}))})
    assert check_inputs(node, {"a": 3}) == ({"a": D(3), "b": D(7)}, [])
    assert [error.field for error in check_inputs(node, {"a": 3, "b": 5})[1]] == ["inputs.b"]


def test_not_applicable_is_a_claim_the_source_must_allow(make_node: Callable[..., Node]) -> None:
    refused = make_node({"kind": "yes_no", "input": "a"}, a="boolean")
    allowed = refused.model_copy(update={"not_applicable": True})
    assert [e.field for e in not_applicable_errors(refused, self_assessed=True, evidence_count=1)] == [
        "not_applicable_reason"
    ]
    assert [e.field for e in not_applicable_errors(allowed, self_assessed=True, evidence_count=0)] == ["evidence"]
    assert not_applicable_errors(allowed, self_assessed=True, evidence_count=1) == []
    assert not_applicable_errors(allowed, self_assessed=False, evidence_count=0) == []


def test_replacing_an_adjustment_must_name_it() -> None:
    adjustment = LatestVerification("e-1", "adjusted", "60% only")
    assert supersedes_error(None, None) is None
    assert supersedes_error(LatestVerification("e-0", "accepted", None), None) is None
    assert supersedes_error(adjustment, None) is not None
    assert supersedes_error(adjustment, "e-2") is not None
    assert supersedes_error(adjustment, "e-1") is None
    assert supersedes_error(None, "e-9") is not None  # nothing to supersede


def test_publication_needs_units_decisions_and_a_reason_for_gaps(mini: Catalogue, registry: UnitRegistry) -> None:
    units = registry.members("provinces", 2024)[:2]
    leaves = [node.code for node in mini.leaves() if node.scored]
    complete = {unit.id: set(leaves) for unit in units}
    assert missing_decisions(mini, units, complete) == ()
    partial = missing_decisions(mini, units, {units[0].id: {leaves[0]}})
    assert [(entry.unit_id, entry.count) for entry in partial] == [
        (units[0].id, len(leaves) - 1),
        (units[1].id, len(leaves)),
    ]
    assert [e.field for e in publication_errors((), (), False, None)] == ["period"]
    assert [e.field for e in publication_errors(units, partial, False, "stated")] == ["period"]
    assert [e.field for e in publication_errors(units, partial, True, None)] == ["incomplete_reason"]
    assert publication_errors(units, partial, True, "stated reason") == []


def test_a_closing_ends_every_reopening_of_its_period() -> None:
    from kpi_core.assessment import submission_windows
    from kpi_core.events import PeriodClosed, UnitReopened

    scope = {"catalogue_id": "c", "catalogue_version": "1", "period": 2024}
    windows = submission_windows(
        [
            (3, UnitReopened(**scope, unit_id="u", reason="gia hạn", reopened_by="e")),
            (1, PeriodClosed(**scope, closed_by="e")),
            (5, PeriodClosed(**scope, closed_by="e")),
            (6, UnitReopened(**scope, unit_id="v", reason="gia hạn", reopened_by="e")),
        ]
    )
    assert windows.closed == {("c", "1", 2024): 5}
    assert windows.reopened == {("c", "1", 2024, "v"): 6}  # u's reopening ended with the closing at 5
