"""Properties of scoring that hold for every input, checked with hypothesis."""

from __future__ import annotations

import random
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kpi_core.catalogue import parse_catalogue
from kpi_core.inputs import RecordedInputs
from kpi_core.scoring import rule_points, score_period, score_unit

counts = st.integers(min_value=0, max_value=10**6)
positive_counts = st.integers(min_value=1, max_value=10**6)
max_points = st.integers(min_value=1, max_value=1000).map(Fraction)
thresholds = st.decimals(min_value=Decimal("0.01"), max_value=1, places=2)


def _in_range(points: Fraction, top: Fraction) -> bool:
    return Fraction(0) <= points <= top


@given(a=counts, b=positive_counts, top=max_points, share=st.booleans())
def test_ratio_points_stay_within_zero_and_max(make_rule, a, b, top, share):
    rule = make_rule({"kind": "ratio", "numerator": ["a"], "denominator": ["b"], "share": share})
    assert _in_range(rule_points(rule, top, {"a": Decimal(a), "b": Decimal(b)})[0], top)


@given(a=counts, b=positive_counts, top=max_points, full_at=thresholds)
def test_capped_ratio_points_stay_within_zero_and_max(make_rule, a, b, top, full_at):
    rule = make_rule({"kind": "ratio", "numerator": ["a"], "denominator": ["b"], "full_at": str(full_at)})
    assert _in_range(rule_points(rule, top, {"a": Decimal(a), "b": Decimal(b)})[0], top)


@given(low=counts, step=counts, b=positive_counts, full_at=thresholds)
def test_capped_ratio_points_never_decrease_as_the_numerator_grows(make_rule, low, step, b, full_at):
    rule = make_rule({"kind": "ratio", "numerator": ["a"], "denominator": ["b"], "full_at": str(full_at)})
    smaller = rule_points(rule, Fraction(20), {"a": Decimal(low), "b": Decimal(b)})[0]
    larger = rule_points(rule, Fraction(20), {"a": Decimal(low + step), "b": Decimal(b)})[0]
    assert smaller <= larger


@st.composite
def tier_tables(draw: st.DrawFn) -> tuple[Fraction, list[dict[str, Any]]]:
    top = draw(st.integers(min_value=1, max_value=100))
    bounds = sorted(draw(st.sets(st.integers(min_value=0, max_value=100), min_size=1, max_size=5)), reverse=True)
    points = draw(st.lists(st.integers(0, top), min_size=len(bounds), max_size=len(bounds)))
    tiers: list[dict[str, Any]] = [
        {draw(st.sampled_from(["above", "at_least"])): str(Decimal(bound) / 100), "points": str(each)}
        for bound, each in zip(bounds, points, strict=True)
    ]
    if draw(st.booleans()):
        tiers.append({"otherwise": True, "points": str(draw(st.integers(0, top)))})
    return Fraction(top), tiers


@given(table=tier_tables(), a=counts, b=positive_counts)
def test_tier_points_stay_within_zero_and_max_when_every_tier_is(make_rule, table, a, b):
    top, tiers = table
    rule = make_rule({"kind": "tiers", "measure": {"numerator": ["a"], "denominator": ["b"]}, "tiers": tiers})
    assert _in_range(rule_points(rule, top, {"a": Decimal(a), "b": Decimal(b)})[0], top)


@given(count=counts, each=st.decimals(min_value=0, max_value=100, places=2), top=max_points)
def test_count_capped_points_stay_within_zero_and_max(make_rule, count, each, top):
    rule = make_rule({"kind": "count_capped", "input": "a", "points_each": str(each)})
    assert _in_range(rule_points(rule, top, {"a": Decimal(count)})[0], top)


@st.composite
def mini_unit_inputs(draw: st.DrawFn) -> dict[str, RecordedInputs]:
    """Any subset of the mini catalogue's indicators, each with valid inputs."""
    candidates: dict[str, dict[str, Any]] = {
        "1.1": {"a": draw(st.sampled_from(["chair", "vice_chair", "other"]))},
        "1.2": {"a": draw(st.booleans())},
    }
    for code in ("3.1", "3.2"):
        b = draw(positive_counts)
        candidates[code] = {"a": Decimal(draw(st.integers(0, b))), "b": Decimal(b)}
    chosen = draw(st.sets(st.sampled_from(sorted(candidates))))
    return {code: RecordedInputs(code, candidates[code], f"ev-{code}", 1) for code in chosen}


@given(inputs=mini_unit_inputs())
def test_every_parent_equals_the_sum_of_its_children_and_the_total_the_sum_of_pillars(shared_mini, inputs):
    score = score_unit(shared_mini, "u", inputs)
    for node in shared_mini.nodes:
        kids = shared_mini.children_of(node.code)
        if kids:
            assert score.node_points[node.code] == sum(score.node_points[kid.code] for kid in kids)
    assert score.total == sum(score.node_points[root.code] for root in shared_mini.roots)


_PEER_DATA: dict[str, Any] = {
    "format": "kpi-ledger.catalogue/v1",
    "id": "peer-test",
    "version": "1.0",
    "kind": "points",
    "title_vi": "Thử so sánh",
    "peer_group": "provinces",
    "total_max_points": "10",
    "source": {"document": "test"},
    "nodes": [
        {"code": "1", "level": "pillar", "name_vi": "Trụ cột", "max_points": "10"},
        {
            "code": "1.1",
            "parent": "1",
            "level": "component",
            "name_vi": "So sánh",
            "max_points": "10",
            "inputs": [{"name": "a", "type": "number"}],
            "rule": {"kind": "peer_minmax", "measure": {"input": "a"}},
        },
    ],
}
PEER_CATALOGUE = parse_catalogue(_PEER_DATA)


@given(
    values=st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), counts, min_size=1, max_size=8),
    seed=st.integers(0, 2**32),
)
def test_peer_minmax_points_do_not_depend_on_the_order_units_are_listed(values, seed):
    units = list(values)
    shuffled = units[:]
    random.Random(seed).shuffle(shuffled)

    def period(order: list[str]) -> dict[str, dict[str, RecordedInputs]]:
        return {unit: {"1.1": RecordedInputs("1.1", {"a": Decimal(values[unit])}, f"ev-{unit}", 1)} for unit in order}

    forward = {unit: s.total for unit, s in score_period(PEER_CATALOGUE, period(units)).items()}
    reordered = {unit: s.total for unit, s in score_period(PEER_CATALOGUE, period(shuffled)).items()}
    assert forward == reordered
    assert max(forward.values()) == 10


def test_rescoring_one_leaf_equals_scoring_the_whole_unit_again() -> None:
    """On the real provincial catalogue: change leaves one at a time, in a random order, and the
    incremental score stays equal to a full `score_unit` after every change."""
    from tests.bench.full_year import catalogue as provincial
    from tests.bench.full_year import year_of_measurements

    from kpi_core.inputs import typed_inputs
    from kpi_core.scoring import peer_stats, rescore_leaf

    scored = provincial()
    bodies = year_of_measurements(scored)
    chooser = random.Random(12)
    chooser.shuffle(bodies)
    period: dict[str, dict[str, RecordedInputs]] = {}
    current: dict[str, Any] = {}
    for sequence, body in enumerate(bodies[:600], start=1):
        node = scored.node(body["indicator"])
        assert node is not None
        recorded = RecordedInputs(node.code, typed_inputs(node, body["inputs"]), f"e{sequence}", sequence)
        period.setdefault(body["unit_id"], {})[node.code] = recorded
        peer = peer_stats(node, period)
        units = sorted(period) if peer is not None else [body["unit_id"]]
        for unit in units:
            before = current.get(unit) or score_unit(scored, unit, {}, {})
            current[unit] = rescore_leaf(scored, before, node.code, period[unit].get(node.code), peer)
    peers = {leaf.code: peer_stats(leaf, period) for leaf in scored.leaves()}
    for unit, incremental in current.items():
        assert incremental == score_unit(scored, unit, period[unit], peers), unit


def test_peers_at_the_same_values_held_by_other_events_change_only_what_the_explanation_names() -> None:
    """`with_peer_events` equals scoring every unit again against the new peers, on the real
    provincial catalogue, for every peer-relative leaf; extremes of other values are refused."""
    from dataclasses import replace

    from tests.bench.full_year import catalogue as provincial
    from tests.bench.full_year import year_of_measurements

    from kpi_core.inputs import typed_inputs
    from kpi_core.rules import is_peer_relative
    from kpi_core.scoring import peer_stats, with_peer_events

    scored = provincial()
    period: dict[str, dict[str, RecordedInputs]] = {}
    for sequence, body in enumerate(year_of_measurements(scored), start=1):
        node = scored.node(body["indicator"])
        assert node is not None
        recorded = RecordedInputs(node.code, typed_inputs(node, body["inputs"]), f"e{sequence}", sequence)
        period.setdefault(body["unit_id"], {})[node.code] = recorded
    peers = {leaf.code: peer_stats(leaf, period) for leaf in scored.leaves() if is_peer_relative(leaf.rule)}
    assert peers and all(stats is not None for stats in peers.values())
    for code, stats in peers.items():
        assert stats is not None
        held_elsewhere = replace(stats, minimum_event_id="another-min", maximum_event_id="another-max")
        moved = replace(stats, maximum=stats.maximum + 1)
        for unit, inputs in period.items():
            before = score_unit(scored, unit, inputs, peers)
            repointed = with_peer_events(before, code, held_elsewhere)
            again = score_unit(scored, unit, inputs, {**peers, code: held_elsewhere})
            assert repointed == again, (unit, code)  # points, values, formulas (peers compared by their values)
            shown, expected = repointed.indicators[code].peer, again.indicators[code].peer
            assert (shown and (shown.minimum_event_id, shown.maximum_event_id)) == (
                expected and (expected.minimum_event_id, expected.maximum_event_id)
            )
            if before.indicators[code].peer is not None:
                assert with_peer_events(before, code, moved) is None


@given(
    st.lists(
        st.tuples(st.sampled_from(["u1", "u2", "u3", "u4", "u5"]), st.none() | st.integers(0, 4)),
        min_size=1,
        max_size=40,
    )
)
def test_peer_stats_kept_after_a_measurement_are_the_stats_counted_again(history: list[tuple[str, int | None]]) -> None:
    """After every measurement (few values, so extremes tie and move; None: not applicable),
    `peer_stats_after` from the stats before it equals `peer_stats` over the whole period, the
    events holding the extremes included."""
    from kpi_core.scoring import MeasuredValues, PeerStats, peer_stats, peer_stats_after

    node = PEER_CATALOGUE.node("1.1")
    assert node is not None
    period: dict[str, dict[str, RecordedInputs]] = {}
    measured: MeasuredValues = {}
    stats = None
    for sequence, (unit, value) in enumerate(history, start=1):
        replaced = period.get(unit, {}).get("1.1")
        inputs = {} if value is None else {"a": Decimal(value)}
        reason = "không phát sinh" if value is None else None
        recorded = RecordedInputs("1.1", inputs, f"e{sequence}", sequence, reason)
        period.setdefault(unit, {})["1.1"] = recorded
        counted = peer_stats(node, period)
        found = counted if stats is None else peer_stats_after(stats, node, period, replaced, recorded, measured)

        def shown(found: PeerStats | None) -> object:
            return found and (found.minimum, found.maximum, found.minimum_event_id, found.maximum_event_id)

        assert shown(found) == shown(counted), sequence
        stats = found
