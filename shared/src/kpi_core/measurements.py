"""Checking a measurement's inputs against the indicator's declared inputs and rule."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from kpi_core.catalogue import InputSpec, Node
from kpi_core.inputs import InputValue
from kpi_core.rules import (
    LevelsRule,
    Measure,
    RatioRule,
    Rule,
    SumOfChildrenRule,
    SurveyScaleRule,
    TiersRule,
    YearOverYearRule,
    measure_of,
    rule_input_names,
    walk_rules,
)

LARGEST_INPUT = Decimal("1E15")  # no count or amount in these indicators comes near a quadrillion
LARGEST_WHOLE = int(LARGEST_INPUT)
SMALLEST_EXPONENT = -15  # nor is any value finer than 10^-15; exact arithmetic on 1E-3000000 would take minutes
MOST_DIGITS = 30
LONGEST_SHOWN = 40  # characters of a refused value an error message repeats
DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")  # "0,45": the Vietnamese decimal comma


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


def check_inputs(node: Node, raw: Mapping[str, Any]) -> tuple[dict[str, InputValue], list[FieldError]]:
    """Normalise raw inputs to exact values and list every problem, each naming its input."""
    if node.rule is None or isinstance(node.rule, SumOfChildrenRule):
        return {}, [FieldError("indicator", f"{node.code} is scored from its children; post its children")]
    return node.input_checks.check(raw)


@dataclass(frozen=True)
class InputChecks:
    """What checking a node's inputs reads from its declared inputs and rule, worked out once a node
    (a measurement set checks thousands of rows against a few hundred nodes)."""

    code: str
    rule_kind: str
    specs: Mapping[str, InputSpec]
    constants: Mapping[str, InputValue]
    categories: Mapping[str, frozenset[str]]  # a category or text input's allowed values (empty: any text)
    signed: frozenset[str]  # the number inputs a negative value is allowed for
    required: tuple[str, ...]  # every input the rule reads, in order
    previous_inputs: frozenset[str]  # last period's values, which a year-over-year rule finds itself
    gates: tuple[tuple[str, frozenset[str]], ...]  # a tiers gate, and the inputs a "no" to it makes moot
    ratios: tuple[tuple[Rule, Measure], ...]  # the rules whose measure is a ratio of sums

    @classmethod
    def of(cls, node: Node) -> InputChecks:
        rule = node.rule
        assert rule is not None and not isinstance(rule, SumOfChildrenRule)
        rules = tuple(walk_rules(rule))
        specs: dict[str, InputSpec] = {}
        for spec in node.inputs:
            specs.setdefault(spec.name, spec)
        return cls(
            code=node.code,
            rule_kind=rule.kind,
            specs=specs,
            constants={spec.name: spec.constant for spec in node.inputs if spec.constant is not None},
            categories={
                name: frozenset(_allowed_categories(spec, rule))
                for name, spec in specs.items()
                if spec.type in ("category", "text")
            },
            signed=frozenset(name for name, spec in specs.items() if spec.signed or _on_a_signed_scale(spec, rule)),
            required=rule_input_names(rule),
            previous_inputs=frozenset(
                inner.previous.input for inner in rules if isinstance(inner, YearOverYearRule) and inner.previous
            ),
            gates=tuple(
                (inner.gate, frozenset(inner.measure.input_names))
                for inner in rules
                if isinstance(inner, TiersRule) and inner.gate is not None
            ),
            ratios=tuple(
                (inner, measure)
                for inner in rules
                if (measure := measure_of(inner)) is not None and measure.input is None
            ),
        )

    def check(self, raw: Mapping[str, Any]) -> tuple[dict[str, InputValue], list[FieldError]]:
        errors: list[FieldError] = []
        values: dict[str, InputValue] = dict(self.constants)
        for name, value in raw.items():
            spec = self.specs.get(name)
            if spec is None:
                errors.append(FieldError(f"inputs.{name}", f"{self.code} has no input '{name}'"))
                continue
            parsed = self._parse(spec, value)
            if isinstance(parsed, FieldError):
                errors.append(parsed)
            elif spec.constant is not None and parsed != spec.constant:
                errors.append(FieldError(f"inputs.{name}", f"is fixed by the source at {spec.constant}; leave it out"))
            else:
                values[name] = parsed
        not_needed = self.previous_inputs
        for gate, measured in self.gates:
            if values.get(gate) is False:
                not_needed = not_needed | measured  # no section: its count does not matter
        for name in self.required:
            if name not in values and name not in raw and name not in not_needed:
                errors.append(FieldError(f"inputs.{name}", f"input '{name}' is required by the {self.rule_kind} rule"))
        if not errors:
            errors.extend(self._ratio_errors(values))
        return values, errors

    def _parse(self, spec: InputSpec, value: Any) -> InputValue | FieldError:
        kind = spec.type
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            return FieldError(f"inputs.{spec.name}", "must be true or false")
        if kind == "category" or kind == "text":
            allowed = self.categories[spec.name]
            if not isinstance(value, str) or (allowed and value not in allowed):
                return FieldError(
                    f"inputs.{spec.name}", f"must be one of {sorted(allowed)}" if allowed else "must be text"
                )
            return value
        number = parse_number(value, kind)
        if isinstance(number, str):
            return FieldError(f"inputs.{spec.name}", number)
        if number < 0 and spec.name not in self.signed:
            return FieldError(f"inputs.{spec.name}", "cannot be negative")
        if kind == "count" and number != number.to_integral_value():
            return FieldError(f"inputs.{spec.name}", "a count must be a whole number")
        if kind == "percent" and number > 1:
            return FieldError(
                f"inputs.{spec.name}",
                f'a share is a fraction from 0 to 1: {shown(value)} is more than 1 (write 0.45 or "45%" for 45 %)',
            )
        return number

    def _ratio_errors(self, values: Mapping[str, InputValue]) -> Iterator[FieldError]:
        for inner, measure in self.ratios:
            if not all(name in values for name in measure.input_names):
                continue  # a ratio whose missing part comes from the previous period
            top = sum((_decimal(values, name) for name in measure.numerator), Decimal(0))
            bottom = sum((_decimal(values, name) for name in measure.denominator), Decimal(0))
            if bottom == 0:
                yield FieldError(
                    f"inputs.{'+'.join(measure.denominator)}",
                    f"the {inner.kind} rule divides by {'+'.join(measure.denominator)}, which is zero",
                )
            elif isinstance(inner, RatioRule) and inner.share and top > bottom:
                part, whole = "+".join(measure.numerator), "+".join(measure.denominator)
                yield FieldError(
                    f"inputs.{part}", f"the {inner.kind} rule is a share: {part} ({top}) exceeds {whole} ({bottom})"
                )


def parse_number(value: Any, kind: str = "number") -> Decimal | str:
    """An exact number from what people send, or why it is not one. Shares also accept "45%"."""
    if type(value) is int and -LARGEST_WHOLE <= value <= LARGEST_WHOLE:
        return Decimal(value)  # what its text gives (exponent 0), without writing and reading it back
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return "must be a number"
    text = str(value).strip()
    scale = Decimal(1)
    if kind == "percent" and text.endswith("%"):
        text, scale = text[:-1].strip(), Decimal("0.01")
    if "," in text and DECIMAL_COMMA.match(text):
        if kind == "count":
            return (
                f"'{shown(value)}' is ambiguous for a count (a thousands separator or a decimal comma?): "
                "write digits only"
            )
        text = text.replace(",", ".")
    try:
        number = Decimal(text)
    except InvalidOperation:
        return f"'{shown(value)}' is not a number"
    if not number.is_finite():
        return "must be a finite number"
    if number == 0:
        number = Decimal(0)  # 0E+3000000 is zero, not an exponent to carry into arithmetic
    # the exponent first: arithmetic on 1E+3000000 (even abs) overflows the decimal context
    if (number != 0 and number.adjusted() > LARGEST_INPUT.adjusted()) or abs(number) > LARGEST_INPUT:
        return f"is implausibly large (at most {LARGEST_INPUT:E})"
    if number != 0 and number.adjusted() < SMALLEST_EXPONENT:
        return f"is implausibly small (write 0, or a value of at least 1E{SMALLEST_EXPONENT})"
    if len(number.as_tuple().digits) > MOST_DIGITS:
        return f"has more than {MOST_DIGITS} digits"
    return number * scale


def shown(value: Any) -> str:
    """A refused value as an error message repeats it: at most LONGEST_SHOWN characters."""
    text = str(value)
    return text if len(text) <= LONGEST_SHOWN else f"{text[: LONGEST_SHOWN - 1]}…"


def _on_a_signed_scale(spec: InputSpec, rule: Rule) -> bool:
    return any(
        isinstance(inner, SurveyScaleRule) and inner.input == spec.name and min(inner.scale) < 0
        for inner in walk_rules(rule)
    )


def _allowed_categories(spec: InputSpec, rule: Rule) -> set[str]:
    allowed = set(spec.options or ())
    for levels_rule in walk_rules(rule):
        if isinstance(levels_rule, LevelsRule) and levels_rule.input == spec.name:
            allowed |= {level.value for level in levels_rule.levels}
    return allowed


def _decimal(values: Mapping[str, InputValue], name: str) -> Decimal:
    value = values.get(name)
    return value if isinstance(value, Decimal) else Decimal(0)
