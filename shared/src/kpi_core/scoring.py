"""Scoring: measurements of a catalogue version and period in, explained points out.

Arithmetic is exact (`Fraction`) throughout; rounding happens only for display
(`display_points`: two decimals, half up). Totals are summed from unrounded points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Literal

from kpi_core.catalogue import Catalogue, Node
from kpi_core.inputs import InputValue, RecordedInputs
from kpi_core.rules import (
    PEER_RELATIVE_KINDS,
    CountCappedRule,
    DirectPointsRule,
    LevelsRule,
    Measure,
    PartsRule,
    PeerMinMaxRule,
    RatioRule,
    RelativeToBestRule,
    Rule,
    SurveyScaleRule,
    Tier,
    TiersRule,
    ValueRule,
    YearOverYearRule,
    YesNoRule,
    is_peer_relative,
    walk_rules,
)

Status = Literal["scored", "missing", "not_applicable"]
TWO_PLACES = Decimal("0.01")


@dataclass(frozen=True)
class PeerStats:
    minimum: Fraction
    maximum: Fraction
    # where the extremes came from (the earliest event at each extreme), for the explanation
    minimum_event_id: str | None = field(default=None, compare=False)
    maximum_event_id: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class IndicatorScore:
    code: str
    status: Status
    points: Fraction | None
    max_points: Fraction | None
    value: Fraction | None = None
    formula: str = ""
    inputs: Mapping[str, InputValue] = field(default_factory=dict)
    event_id: str | None = None
    sequence: int | None = None
    peer: PeerStats | None = None
    previous_event_id: str | None = None


@dataclass(frozen=True)
class UnitScore:
    unit: str
    indicators: Mapping[str, IndicatorScore]
    node_points: Mapping[str, Fraction]
    total: Fraction

    def pillar_points(self, catalogue: Catalogue) -> dict[str, Fraction]:
        return {root.code: self.node_points.get(root.code, Fraction(0)) for root in catalogue.roots if root.scored}


class InputError(ValueError):
    """Inputs that a rule cannot score; the message names the input and the rule."""


# A year of scores shows few distinct numbers many times: what is computed from a number alone is
# kept (pure functions of their argument, so kept results are the results), up to a bound.
_MEMO_LIMIT = 65_536
_DISPLAYED: dict[tuple[int, int], Decimal] = {}
_FORMATTED: dict[tuple[int, int], str] = {}
_EXACT: dict[Decimal | int, Fraction] = {}


def display_points(points: Fraction | None) -> Decimal | None:
    if points is None:
        return None
    key = (points.numerator, points.denominator)
    shown = _DISPLAYED.get(key)
    if shown is None:
        if len(_DISPLAYED) > _MEMO_LIMIT:
            _DISPLAYED.clear()
        exact = Decimal(points.numerator) / Decimal(points.denominator)
        shown = _DISPLAYED[key] = exact.quantize(TWO_PLACES, rounding=ROUND_HALF_UP)
    return shown


def _fmt(number: Fraction) -> str:
    if number.denominator == 1:
        return str(number.numerator)
    key = (number.numerator, number.denominator)
    shown = _FORMATTED.get(key)
    if shown is None:
        if len(_FORMATTED) > _MEMO_LIMIT:
            _FORMATTED.clear()
        exact = Decimal(number.numerator) / Decimal(number.denominator)
        shown = _FORMATTED[key] = format(exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP).normalize(), "f")
    return shown


def _exact(value: Decimal | int) -> Fraction:
    """`Fraction(value)`, kept per value (equal decimals give equal fractions)."""
    try:
        found = _EXACT.get(value)
    except TypeError:  # a signalling NaN cannot be hashed: Fraction says what is wrong with it
        return Fraction(value)
    if found is None:
        if len(_EXACT) > _MEMO_LIMIT:
            _EXACT.clear()
        found = _EXACT[value] = Fraction(value)
    return found


def _number(inputs: Mapping[str, InputValue], name: str) -> Fraction:
    value = inputs.get(name)
    if value is None:
        raise InputError(f"input '{name}' is missing")
    if isinstance(value, (bool, str)):
        raise InputError(f"input '{name}' must be a number")
    return _exact(value)


def measure_value(measure: Measure, inputs: Mapping[str, InputValue]) -> tuple[Fraction, str]:
    """The measure's exact value and how it was computed, with the numbers substituted."""
    if measure.input is not None:
        value = _number(inputs, measure.input)
        return value, f"{measure.input}={_fmt(value)}"
    numerator = [_number(inputs, name) for name in measure.numerator]
    denominator = [_number(inputs, name) for name in measure.denominator]
    total_below = sum(denominator, Fraction(0))
    if total_below == 0:
        raise InputError(f"denominator {'+'.join(measure.denominator)} is zero")
    ratio = sum(numerator, Fraction(0)) / total_below
    shown = f"({'+'.join(_fmt(n) for n in numerator)})/({'+'.join(_fmt(d) for d in denominator)})"
    if measure.growth:
        ratio -= 1
        shown += " − 1"
    return ratio, f"{shown} = {_fmt(ratio)}"


def _tier_points(tiers: tuple[Tier, ...], value: Fraction) -> Fraction:
    for tier in tiers:
        if tier.otherwise:
            return _exact(tier.points)
        if tier.above is not None and value > _exact(tier.above):
            return _exact(tier.points)
        if tier.at_least is not None and value >= _exact(tier.at_least):
            return _exact(tier.points)
    return Fraction(0)


def rule_points(
    rule: Rule, max_points: Fraction, inputs: Mapping[str, InputValue], peer: PeerStats | None = None
) -> tuple[Fraction, Fraction | None, str]:
    """Points of one rule: (points, measured value, formula with numbers substituted)."""
    match rule:
        case RatioRule():
            ratio, shown = measure_value(rule.measure, inputs)
            threshold = _exact(rule.full_at) if rule.full_at is not None else Fraction(1)
            points = min(ratio / threshold, Fraction(1)) * max_points
            return points, ratio, f"min({shown} / {_fmt(threshold)}, 1) × {_fmt(max_points)} = {_fmt(points)}"
        case YesNoRule():
            answer = inputs.get(rule.input)
            if not isinstance(answer, bool):
                raise InputError(f"input '{rule.input}' must be true or false")
            points = max_points if answer else Fraction(0)
            return points, Fraction(int(answer)), f"{rule.input}={'yes' if answer else 'no'} → {_fmt(points)}"
        case TiersRule() if rule.gate is not None and inputs.get(rule.gate) is not True:
            if not isinstance(inputs.get(rule.gate), bool):
                raise InputError(f"input '{rule.gate}' must be true or false")
            return Fraction(0), None, f"{rule.gate}=no → 0"
        case TiersRule():
            value, shown = measure_value(rule.measure, inputs)
            points = _tier_points(rule.tiers, value)
            return points, value, f"{shown} → tier {_fmt(points)}"
        case LevelsRule():
            chosen = inputs.get(rule.input)
            level = next((lvl for lvl in rule.levels if lvl.value == chosen), None)
            if level is None:
                raise InputError(f"input '{rule.input}' must be one of {[lvl.value for lvl in rule.levels]}")
            return _exact(level.points), None, f"{rule.input}={chosen} → {_fmt(_exact(level.points))}"
        case PartsRule():
            total, shown_parts = Fraction(0), []
            for part in rule.parts:
                points, _, shown = rule_points(part.rule, _exact(part.max_points), inputs, peer)
                total += points
                shown_parts.append(f"[{shown}]")
            return total, None, f"{' + '.join(shown_parts)} = {_fmt(total)}"
        case CountCappedRule():
            count = _number(inputs, rule.input)
            points = min(count * _exact(rule.points_each), max_points)
            each = _fmt(_exact(rule.points_each))
            return points, count, f"min({_fmt(count)} × {each}, {_fmt(max_points)}) = {_fmt(points)}"
        case DirectPointsRule():
            awarded = _number(inputs, rule.input)
            points = min(max(awarded, Fraction(0)), max_points)
            return points, awarded, f"assessed {_fmt(awarded)} (max {_fmt(max_points)}) = {_fmt(points)}"
        case PeerMinMaxRule() | RelativeToBestRule():
            value, shown = measure_value(rule.measure, inputs)
            if peer is None:
                raise InputError("peer-relative rule scored without peer values")
            points = _peer_points(rule, value, peer, max_points)
            return points, value, f"{shown}; peers min {_fmt(peer.minimum)} max {_fmt(peer.maximum)} → {_fmt(points)}"
        case YearOverYearRule() if max_points == 0:  # a KPI: the change itself is the value
            value, shown = measure_value(rule.measure, inputs)
            return Fraction(0), value * 100 if rule.measure.percent else value, shown
        case YearOverYearRule():
            value, shown = measure_value(rule.measure, inputs)
            if rule.tiers:
                points = _tier_points(rule.tiers, value)
                return points, value, f"{shown} → tier {_fmt(points)}"
            threshold = _exact(rule.full_at) if rule.full_at is not None else Fraction(1)
            points = min(value / threshold, Fraction(1)) * max_points
            return points, value, f"min({shown} / {_fmt(threshold)}, 1) × {_fmt(max_points)} = {_fmt(points)}"
        case ValueRule() if rule.measure.input is not None and isinstance(inputs.get(rule.measure.input), bool):
            answer = bool(inputs[rule.measure.input])  # a yes/no indicator's value: 1 for yes, 0 for no
            return Fraction(0), Fraction(int(answer)), f"{rule.measure.input}={'yes' if answer else 'no'}"
        case ValueRule():
            measured, shown = measure_value(rule.measure, inputs)
            return Fraction(0), measured * 100 if rule.measure.percent else measured, shown
        case SurveyScaleRule():
            step = _number(inputs, rule.input)
            if step not in [_exact(allowed) for allowed in rule.scale]:
                raise InputError(f"input '{rule.input}' must be one of the survey scale {list(map(str, rule.scale))}")
            return Fraction(0), step, f"{rule.input}={_fmt(step)}"
    raise NotImplementedError(f"rule kind {rule.kind} is not scored yet")


def _peer_points(rule: Rule, value: Fraction, peer: PeerStats, max_points: Fraction) -> Fraction:
    if isinstance(rule, RelativeToBestRule):
        return max_points if peer.maximum == 0 else min(value / peer.maximum, Fraction(1)) * max_points
    spread = peer.maximum - peer.minimum
    if spread == 0:
        return max_points
    return (value - peer.minimum) / spread * max_points


def score_indicator(node: Node, recorded: RecordedInputs | None, peer: PeerStats | None = None) -> IndicatorScore:
    """One node's score for one unit, with status and explanation."""
    if recorded is None:
        return unscored(node)
    max_points = _exact(node.max_points) if node.max_points is not None else None
    inputs, event_id, sequence = recorded.inputs, recorded.event_id, recorded.sequence
    previous = recorded.previous_event_id
    if recorded.not_applicable_reason is not None:
        formula = f"not applicable ({recorded.not_applicable_reason}) → max"
        return IndicatorScore(
            node.code,
            "not_applicable",
            max_points,
            max_points,
            formula=formula,
            inputs=inputs,
            event_id=event_id,
            sequence=sequence,
            previous_event_id=previous,
        )
    assert node.rule is not None
    try:
        points, value, formula = rule_points(node.rule, max_points or Fraction(0), inputs, peer)
    except InputError as missing:  # e.g. no previous period for a year-over-year rule: no data scores 0
        return IndicatorScore(
            node.code,
            "missing",
            Fraction(0) if max_points is not None else None,
            max_points,
            formula=str(missing),
            inputs=inputs,
            event_id=event_id,
            sequence=sequence,
            previous_event_id=previous,
        )
    return IndicatorScore(
        node.code,
        "scored",
        points if max_points is not None else None,
        max_points,
        value,
        formula,
        inputs,
        event_id,
        sequence,
        peer,
        previous,
    )


MeasuredValues = dict[int, tuple[RecordedInputs, Fraction]]  # id(recorded inputs) -> (them, the measured value)


def peer_stats(
    node: Node, period_inputs: Mapping[str, Mapping[str, RecordedInputs]], measured: MeasuredValues | None = None
) -> PeerStats | None:
    """Min and max of a peer-relative node's measure over the units that reported it. `measured`, if
    given, keeps each unit's measured value across calls: a projection asks again after every
    measurement of the node, and only one unit's inputs changed (recorded inputs never change: a
    new measurement is a new object, found by identity and checked to be the same one)."""
    peer_rule = next((rule for rule in walk_rules(node.rule) if rule.kind in PEER_RELATIVE_KINDS), None)
    if peer_rule is None:
        return None
    measure: Measure = peer_rule.measure  # type: ignore[union-attr]
    values: list[tuple[Fraction, int, str]] = []
    for unit_inputs in period_inputs.values():
        recorded = unit_inputs.get(node.code)
        if recorded is None or recorded.not_applicable_reason is not None:
            continue
        kept = measured.get(id(recorded)) if measured is not None else None
        if kept is not None and kept[0] is recorded:
            value = kept[1]
        else:
            value = measure_value(measure, recorded.inputs)[0]
            if measured is not None:
                measured[id(recorded)] = recorded, value
        values.append((value, recorded.sequence, recorded.event_id))
    if not values:
        return None
    lowest = min(values)
    highest = min(values, key=lambda entry: (-entry[0], entry[1]))
    return PeerStats(lowest[0], highest[0], lowest[2], highest[2])


def peer_stats_after(
    before: PeerStats,
    node: Node,
    period_inputs: Mapping[str, Mapping[str, RecordedInputs]],
    replaced: RecordedInputs | None,
    recorded: RecordedInputs,
    measured: MeasuredValues | None = None,
) -> PeerStats | None:
    """`peer_stats` after one unit's measurement `recorded` of the node replaced `replaced` (None: its
    first), given `before`, the stats of the period as it was. They stand when the replaced
    measurement held neither extreme and the new value lies within them: no extreme moves, and at
    an extreme's value the earliest event holds it, never this one (measurements come in sequence
    order). Else every unit is counted again."""
    holders = (before.minimum_event_id, before.maximum_event_id)
    if recorded.not_applicable_reason is None and (replaced is None or replaced.event_id not in holders):
        peer_rule = next((rule for rule in walk_rules(node.rule) if rule.kind in PEER_RELATIVE_KINDS), None)
        if peer_rule is not None:
            measure: Measure = peer_rule.measure  # type: ignore[union-attr]
            value = measure_value(measure, recorded.inputs)[0]
            if measured is not None:
                measured[id(recorded)] = recorded, value
            if before.minimum <= value <= before.maximum:
                return before
    return peer_stats(node, period_inputs, measured)


def score_unit(
    catalogue: Catalogue,
    unit: str,
    unit_inputs: Mapping[str, RecordedInputs],
    peers: Mapping[str, PeerStats | None] | None = None,
) -> UnitScore:
    """Every node of the catalogue for one unit: leaves by their rules, parents as sums."""
    peers = peers or {}
    indicators = {
        node.code: score_indicator(node, unit_inputs.get(node.code), peers.get(node.code))
        for node in catalogue.leaves()
    }
    node_points: dict[str, Fraction] = {}

    def total_of(node: Node) -> Fraction:
        if node.code in indicators:
            points = indicators[node.code].points or Fraction(0)
        else:
            points = sum((total_of(kid) for kid in catalogue.children_of(node.code) if kid.scored), Fraction(0))
        node_points[node.code] = points
        return points

    total = sum((total_of(root) for root in catalogue.roots if root.scored), Fraction(0))
    return UnitScore(unit, indicators, node_points, total)


def rescore_leaf(
    catalogue: Catalogue,
    before: UnitScore,
    code: str,
    recorded: RecordedInputs | None,
    peer: PeerStats | None = None,
) -> UnitScore:
    """A unit's score with one leaf scored again: the leaf, then its ancestors and the total moved by
    the leaf's change (parents are sums, so this equals `score_unit` with only that leaf changed)."""
    node = catalogue.node(code)
    if node is None:
        raise KeyError(code)
    indicator = score_indicator(node, recorded, peer)
    old = before.indicators[code].points or Fraction(0) if code in before.indicators else Fraction(0)
    delta = (indicator.points or Fraction(0)) - old
    node_points = dict(before.node_points)
    node_points[code] = indicator.points or Fraction(0)
    total = before.total
    child = node
    while delta and child.scored:
        if child.parent is None:
            total += delta
            break
        node_points[child.parent] = node_points.get(child.parent, Fraction(0)) + delta
        parent = catalogue.node(child.parent)
        assert parent is not None
        child = parent
    return UnitScore(before.unit, {**before.indicators, code: indicator}, node_points, total)


def with_peer_events(before: UnitScore, code: str, peer: PeerStats) -> UnitScore | None:
    """A unit's score with a peer-relative leaf's peers now at extremes of the same values, set by
    other events (the unit holding one was measured again at the same value, or another unit
    reached it earlier). A peer-relative rule reads only the extremes' values, so the points,
    value and formula are the ones the unit has and only the events its explanation names change:
    this equals `rescore_leaf` with the unit's inputs as they were, without scoring the rule again.
    None when the leaf was scored against other extreme values: it must be scored again."""
    indicator = before.indicators[code]
    if indicator.peer is None:  # missing or not applicable: scored without peers
        return before
    if (indicator.peer.minimum, indicator.peer.maximum) != (peer.minimum, peer.maximum):
        return None
    return UnitScore(
        before.unit, {**before.indicators, code: replace(indicator, peer=peer)}, before.node_points, before.total
    )


def with_previous_period(
    catalogue: Catalogue,
    period_inputs: Mapping[str, Mapping[str, RecordedInputs]],
    previous_period: Mapping[str, Mapping[str, RecordedInputs]],
) -> dict[str, dict[str, RecordedInputs]]:
    """Fill year-over-year inputs a unit did not report from its own previous period's measurement."""
    filled = {unit: dict(inputs) for unit, inputs in period_inputs.items()}
    for node in catalogue.leaves():
        rule = node.rule
        if not isinstance(rule, YearOverYearRule) or rule.previous is None:
            continue
        for unit, inputs in filled.items():
            current = inputs.get(node.code)
            earlier = previous_period.get(unit, {}).get(node.code)
            if current is None or earlier is None or rule.previous.input in current.inputs:
                continue
            value = earlier.inputs.get(rule.previous.from_input)
            if value is not None and current.not_applicable_reason is None:
                merged = {**current.inputs, rule.previous.input: value}
                inputs[node.code] = replace(current, inputs=merged, previous_event_id=earlier.event_id)
    return filled


def score_period(
    catalogue: Catalogue,
    period_inputs: Mapping[str, Mapping[str, RecordedInputs]],
    previous_period: Mapping[str, Mapping[str, RecordedInputs]] | None = None,
    units: Iterable[str] | None = None,
) -> dict[str, UnitScore]:
    """All units of one catalogue version and period (peer-relative rules see every unit;
    year-over-year rules see each unit's previous period).

    With `units` (the peer group's units of the period), exactly those are scored: a unit with no
    data scores 0 (missing), and nobody outside the list counts among the peers."""
    if units is not None:
        period_inputs = {unit: period_inputs.get(unit, {}) for unit in units}
    if previous_period:
        period_inputs = with_previous_period(catalogue, period_inputs, previous_period)
    peers = {node.code: peer_stats(node, period_inputs) for node in catalogue.leaves() if is_peer_relative(node.rule)}
    return {unit: score_unit(catalogue, unit, inputs, peers) for unit, inputs in period_inputs.items()}


def unscored(node: Node) -> IndicatorScore:
    """A leaf nothing was recorded for: missing, 0 points (no points at all in a KPI set)."""
    max_points = Fraction(node.max_points) if node.max_points is not None else None
    return IndicatorScore(node.code, "missing", Fraction(0) if max_points is not None else None, max_points)


def unit_score_of(
    catalogue: Catalogue,
    unit: str,
    indicators: Mapping[str, IndicatorScore],
    node_points: Mapping[str, Fraction],
    total: Fraction | None,
) -> UnitScore:
    """A unit's score as scoring recorded it (only what ever changed is recorded): every other leaf
    is missing and every other node has 0 points, which is what `score_unit` gives them."""
    missing, nothing = _nothing_recorded(catalogue)
    return UnitScore(
        unit,
        {**missing, **{code: score for code, score in indicators.items() if code in missing}},
        {**nothing, **{code: points for code, points in node_points.items() if code in nothing}},
        total if total is not None else Fraction(0),
    )


_NOTHING_RECORDED: dict[int, tuple[Catalogue, dict[str, IndicatorScore], dict[str, Fraction]]] = {}


def _nothing_recorded(catalogue: Catalogue) -> tuple[dict[str, IndicatorScore], dict[str, Fraction]]:
    """Every leaf missing and every node at 0 points: the same for every unit of a catalogue, so made
    once per catalogue object (kept beside it, so a reused id never finds another's); the scores
    are frozen, so they can be shared."""
    found = _NOTHING_RECORDED.get(id(catalogue))
    if found is None or found[0] is not catalogue:
        if len(_NOTHING_RECORDED) > 64:
            _NOTHING_RECORDED.clear()
        leaves = {leaf.code: unscored(leaf) for leaf in catalogue.leaves()}
        nodes = {node.code: Fraction(0) for node in catalogue.nodes}
        found = _NOTHING_RECORDED[id(catalogue)] = catalogue, leaves, nodes
    _, missing, nothing = found
    return dict(missing), dict(nothing)
