"""Machine-readable scoring rules, as the catalogue files declare them.

Each rule kind is a frozen pydantic model; `Rule` is their discriminated union. Numbers are
exact: the files write them as strings and they are read as `Decimal` (see docs/catalogue-format.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Measure(_Frozen):
    """The value a rule looks at: one input, or a ratio of sums of inputs."""

    input: str | None = None
    numerator: tuple[str, ...] = ()
    denominator: tuple[str, ...] = ()
    percent: bool = False
    growth: bool = False  # the ratio minus one: (a − b) / b, as "growth over last year" indicators define it

    @model_validator(mode="after")
    def _one_shape(self) -> Measure:
        if self.input is None and not (self.numerator and self.denominator):
            raise ValueError("a measure is either {input} or {numerator, denominator}")
        if self.input is not None and (self.numerator or self.denominator):
            raise ValueError("a measure cannot be both an input and a ratio")
        return self

    @property
    def input_names(self) -> tuple[str, ...]:
        return (self.input,) if self.input is not None else self.numerator + self.denominator


class Tier(_Frozen):
    """One step of a tier table, matched from the top: `above` is >, `at_least` is >=."""

    above: Decimal | None = None
    at_least: Decimal | None = None
    otherwise: bool = False
    points: Decimal

    @model_validator(mode="after")
    def _one_condition(self) -> Tier:
        conditions = [self.above is not None, self.at_least is not None, self.otherwise]
        if sum(conditions) != 1:
            raise ValueError("a tier has exactly one of above, at_least, otherwise")
        return self

    @property
    def bound(self) -> Decimal | None:
        return self.above if self.above is not None else self.at_least


class Level(_Frozen):
    value: str
    label_vi: str | None = None
    points: Decimal


class RatioRule(_Frozen):
    kind: Literal["ratio"]
    numerator: tuple[str, ...] = Field(min_length=1)
    denominator: tuple[str, ...] = Field(min_length=1)
    full_at: Decimal | None = None
    share: bool = True
    note: str | None = None

    @cached_property
    def measure(self) -> Measure:
        """Built once per rule (it is checked for every row of a measurement set)."""
        return Measure(numerator=self.numerator, denominator=self.denominator)


class YesNoRule(_Frozen):
    kind: Literal["yes_no"]
    input: str
    note: str | None = None


class TiersRule(_Frozen):
    """Tiers on a measure; with `gate`, a yes/no input that must be true first ("the section exists",
    then bands of its item count), so the band is derived from the count instead of being asked for."""

    kind: Literal["tiers"]
    measure: Measure
    tiers: tuple[Tier, ...]
    gate: str | None = None
    note: str | None = None


class LevelsRule(_Frozen):
    kind: Literal["levels"]
    input: str
    levels: tuple[Level, ...]
    note: str | None = None


class Part(_Frozen):
    max_points: Decimal
    rule: Rule


class PartsRule(_Frozen):
    kind: Literal["parts"]
    parts: tuple[Part, ...]
    note: str | None = None


class CountCappedRule(_Frozen):
    kind: Literal["count_capped"]
    input: str
    points_each: Decimal
    note: str | None = None


class PeerMinMaxRule(_Frozen):
    kind: Literal["peer_minmax"]
    measure: Measure
    note: str | None = None


class RelativeToBestRule(_Frozen):
    kind: Literal["relative_to_best"]
    measure: Measure
    note: str | None = None


class PreviousPeriod(_Frozen):
    """An input that, when the unit does not report it, is taken from its previous period's measurement."""

    input: str
    from_input: str


class YearOverYearRule(_Frozen):
    """This period against the previous one: the measure compares them, then tiers or a capped ratio score it."""

    kind: Literal["year_over_year"]
    measure: Measure
    previous: PreviousPeriod | None = None
    full_at: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    compare: str | None = None
    note: str | None = None


class SumOfChildrenRule(_Frozen):
    kind: Literal["sum_of_children"]
    note: str | None = None


class DirectPointsRule(_Frozen):
    kind: Literal["direct_points"]
    input: str
    note: str | None = None


class ValueRule(_Frozen):
    kind: Literal["value"]
    measure: Measure
    note: str | None = None


class SurveyScaleRule(_Frozen):
    kind: Literal["survey_scale"]
    input: str
    scale: tuple[Decimal, ...] = (Decimal(-1), Decimal(0), Decimal(1), Decimal(2))
    note: str | None = None


Rule = Annotated[
    RatioRule
    | YesNoRule
    | TiersRule
    | LevelsRule
    | PartsRule
    | CountCappedRule
    | PeerMinMaxRule
    | RelativeToBestRule
    | YearOverYearRule
    | SumOfChildrenRule
    | DirectPointsRule
    | ValueRule
    | SurveyScaleRule,
    Field(discriminator="kind"),
]
Part.model_rebuild()

PEER_RELATIVE_KINDS = frozenset({"peer_minmax", "relative_to_best"})


def rule_input_names(rule: Rule) -> tuple[str, ...]:
    """Every input name a rule reads, in order, without repeats."""
    names: list[str] = []
    match rule:
        case RatioRule():
            names += [*rule.numerator, *rule.denominator]
        case YesNoRule() | LevelsRule() | CountCappedRule() | DirectPointsRule() | SurveyScaleRule():
            names.append(rule.input)
        case TiersRule():
            names += [*((rule.gate,) if rule.gate else ()), *rule.measure.input_names]
        case PeerMinMaxRule() | RelativeToBestRule() | YearOverYearRule() | ValueRule():
            names += rule.measure.input_names
        case PartsRule():
            for part in rule.parts:
                names += rule_input_names(part.rule)
        case SumOfChildrenRule():
            pass
    return tuple(dict.fromkeys(names))


def measure_of(rule: Rule) -> Measure | None:
    """The measure a rule looks at, if it has one (a ratio's is its numerator over its denominator)."""
    if isinstance(rule, RatioRule):
        return rule.measure
    if isinstance(rule, TiersRule | PeerMinMaxRule | RelativeToBestRule | YearOverYearRule | ValueRule):
        return rule.measure
    return None


def walk_rules(rule: Rule | None) -> Iterator[Rule]:
    """A rule and, for parts, every part's rule, depth first."""
    if rule is None:
        return
    yield rule
    if isinstance(rule, PartsRule):
        for part in rule.parts:
            yield from walk_rules(part.rule)


def is_peer_relative(rule: Rule | None) -> bool:
    """True when a unit's points depend on other units' values (or on a part that does)."""
    if rule is None:
        return False
    if isinstance(rule, PartsRule):
        return any(is_peer_relative(part.rule) for part in rule.parts)
    return rule.kind in PEER_RELATIVE_KINDS
