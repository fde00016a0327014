"""Inputs that make a rule award an exact number of points: how the official results are replayed.

Given a node and the points a document prints for it, `inputs_for` returns the inputs a unit would
submit to get exactly those points (plus, for peer-relative rules, what the peers must submit). A
gated tier table (provincial 1.5: "the section exists", then bands of its news count) is replayed
with the gate open and a count in the band, or, for 0 points, with the gate closed.
Used by the tests that reproduce Gia Lai's printed 2022 result through the API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from kpi_core.catalogue import Node
from kpi_core.rules import (
    CountCappedRule,
    DirectPointsRule,
    LevelsRule,
    Measure,
    PartsRule,
    PeerMinMaxRule,
    RatioRule,
    RelativeToBestRule,
    Rule,
    Tier,
    TiersRule,
    YearOverYearRule,
    YesNoRule,
)

SCALE = 10**6  # counts are whole numbers: ratios are written over a million


class Unreachable(ValueError):
    """No inputs make this rule award these points (the printed score is not on the rule's scale)."""


@dataclass
class Submission:
    inputs: dict[str, Any]
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)  # peer unit -> inputs


def _decimal(value: Fraction) -> str:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return format(exact.normalize(), "f")


def _measure_inputs(node: Node, measure: Measure, value: Fraction) -> dict[str, Any]:
    """Inputs whose measure equals `value` (a ratio is written over a large whole denominator, or,
    when its terms are shares, which lie between 0 and 1, as two exact decimals below 1)."""
    if measure.input is not None:
        return {measure.input: _number(node, measure.input, value)}
    top, bottom = measure.numerator, measure.denominator
    if any(_is_share(node, name) for name in (*top, *bottom)):
        return _share_inputs(node, measure, value)
    fixed = node.input_spec(bottom[0])
    if len(bottom) == 1 and fixed is not None and fixed.constant is not None:
        # the denominator is a constant the source prints (7 required platforms): only k/7 is reachable
        part = value * Fraction(fixed.constant)
        if part.denominator != 1:
            raise Unreachable(f"{node.code}: {value} is not a whole count over the fixed {fixed.constant}")
        return {top[0]: int(part)}
    whole = SCALE
    part = value * whole
    if part.denominator != 1:
        whole *= part.denominator
        part = value * whole
    inputs = {name: 0 for name in (*top, *bottom)}
    inputs[top[0]] = int(part)
    if top[0] in bottom:  # the numerator is part of the denominator, as in a/(a+b)
        other = next(name for name in bottom if name != top[0])
        inputs[other] = whole - int(part)
    else:
        inputs[bottom[0]] = whole
    return inputs


def _is_share(node: Node, name: str) -> bool:
    spec = node.input_spec(name)
    return spec is not None and spec.type == "percent"


def _share_inputs(node: Node, measure: Measure, value: Fraction) -> dict[str, Any]:
    top, bottom = measure.numerator, measure.denominator
    if measure.growth:
        value += 1  # the measure is the ratio minus one
    if value < 0 or top[0] in bottom:
        raise Unreachable(f"{node.code}: a ratio of shares cannot be {value} here")
    # p/q as (p/10^k)/(q/10^k): two exact decimals, both at most 1 once 10^k exceeds p and q
    scale = 10 ** len(str(max(value.numerator, value.denominator)))
    above, below = Fraction(value.numerator, scale), Fraction(value.denominator, scale)
    inputs = {name: _number(node, name, Fraction(0)) for name in (*top, *bottom)}
    inputs[top[0]] = _number(node, top[0], above)
    inputs[bottom[0]] = _number(node, bottom[0], below)
    return inputs


def _number(node: Node, name: str, value: Fraction) -> Any:
    spec = node.input_spec(name)
    if spec is not None and spec.type == "count" and value.denominator != 1:
        raise Unreachable(f"{node.code}: count {name} cannot be {value}")
    return int(value) if value.denominator == 1 else _decimal(value)


def _inside(node: Node, measure: Measure, tier: Tier) -> Fraction:
    """A value the tier matches: its bound for `at_least`, just above it for `above` (the next whole
    number when the measure is a count, which cannot take a value in between)."""
    if tier.at_least is not None:
        return Fraction(tier.at_least)
    bound = Fraction(tier.above)  # type: ignore[arg-type]
    spec = node.input_spec(measure.input) if measure.input is not None else None
    if spec is not None and spec.type == "count":
        return Fraction(math.floor(bound) + 1)
    return bound + Fraction(1, 1000)


def inputs_for(node: Node, points: Fraction) -> Submission:
    assert node.rule is not None and node.max_points is not None
    return _rule_inputs(node, node.rule, Fraction(node.max_points), points)


def _rule_inputs(node: Node, rule: Rule, maximum: Fraction, points: Fraction) -> Submission:
    if not 0 <= points <= maximum:
        raise Unreachable(f"{node.code}: {points} is outside 0..{maximum}")
    match rule:
        case YesNoRule():
            if points not in (0, maximum):
                raise Unreachable(f"{node.code}: yes/no gives 0 or {maximum}, not {points}")
            return Submission({rule.input: points == maximum})
        case LevelsRule():
            level = next((lvl for lvl in rule.levels if Fraction(lvl.points) == points), None)
            if level is None:
                raise Unreachable(f"{node.code}: no level gives {points}")
            return Submission({rule.input: level.value})
        case RatioRule():
            threshold = Fraction(rule.full_at) if rule.full_at is not None else Fraction(1)
            return Submission(_measure_inputs(node, rule.measure, points / maximum * threshold))
        case YearOverYearRule() if not rule.tiers:
            threshold = Fraction(rule.full_at) if rule.full_at is not None else Fraction(1)
            return Submission(_measure_inputs(node, rule.measure, points / maximum * threshold))
        case TiersRule() | YearOverYearRule():
            # a gated table ("the section exists", then bands of its count): a closed gate gives 0,
            # an open one the tiers
            gate = rule.gate if isinstance(rule, TiersRule) else None
            if gate is not None and points == 0:
                return Submission({gate: False})  # no section: its count is not asked for
            opened = {gate: True} if gate is not None else {}
            for tier in rule.tiers:
                if Fraction(tier.points) != points:
                    continue
                value = Fraction(0) if tier.otherwise else _inside(node, rule.measure, tier)
                return Submission(opened | _measure_inputs(node, rule.measure, value))
            raise Unreachable(f"{node.code}: no tier gives {points}")
        case CountCappedRule():
            count = points / Fraction(rule.points_each)
            if count.denominator != 1:
                raise Unreachable(f"{node.code}: {points} is not a whole number of activities")
            return Submission({rule.input: int(count)})
        case DirectPointsRule():
            return Submission({rule.input: _decimal(points)})
        case PeerMinMaxRule() | RelativeToBestRule():
            # the best peer reports 1, a low peer 0 (Min-Max), and this unit its share of the best
            share = points / maximum
            # a count measure needs whole numbers: scale the best value so the share is whole too
            best = Fraction(share.denominator) if rule.measure.input is not None else Fraction(1)
            peers = {"peer-best": _measure_inputs(node, rule.measure, best)}
            if isinstance(rule, PeerMinMaxRule):
                peers["peer-low"] = _measure_inputs(node, rule.measure, Fraction(0))
            return Submission(_measure_inputs(node, rule.measure, share * best), peers)
        case PartsRule():
            return Submission(_parts_inputs(node, rule, 0, points))
    raise Unreachable(f"{node.code}: {rule.kind} cannot be replayed")


def _parts_inputs(node: Node, rule: PartsRule, index: int, points: Fraction) -> dict[str, Any]:
    """Split the points over the parts: each part gets as much as it can, or nothing (yes/no parts)."""
    if index == len(rule.parts):
        if points != 0:
            raise Unreachable(f"{node.code}: the parts cannot add up to the printed points")
        return {}
    part = rule.parts[index]
    maximum = Fraction(part.max_points)
    for share in dict.fromkeys(
        (min(points, maximum), Fraction(0), points - sum(Fraction(p.max_points) for p in rule.parts[index + 1 :]))
    ):
        if not 0 <= share <= maximum:
            continue
        try:
            own = _rule_inputs(node, part.rule, maximum, share).inputs
            return own | _parts_inputs(node, rule, index + 1, points - share)
        except Unreachable:
            continue
    raise Unreachable(f"{node.code}: no split of {points} over the parts")
