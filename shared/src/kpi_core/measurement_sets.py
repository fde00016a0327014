"""A measurement set: many self-assessments of one catalogue version and period in one request.

Every row is checked exactly as `POST /v1/measurements` checks one (`kpi_core.recording`), then
compared with the latest self-assessment the log holds for its unit and component: a row equal to
it stores nothing (`unchanged`), a different one is a correction (`replaced`), a new one is
`imported`. Atomic by default: one refused row refuses the set; `partial` stores the rest. Pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from pydantic import ValidationError

from kpi_core.assessment import assessed_unit_error
from kpi_core.catalogue import Catalogue
from kpi_core.events import Evidence, MeasurementRecorded
from kpi_core.measurements import FieldError
from kpi_core.recording import Submissions, check_unit, checked_event, decide_submission
from kpi_core.refusals import Refused
from kpi_core.units import UnitRegistry

Mode = Literal["atomic", "partial"]
Outcome = Literal["imported", "replaced"]
Subject = tuple[str, str]  # (unit, indicator) within the set's catalogue version and period


@dataclass(frozen=True)
class SetScope:
    catalogue_id: str
    catalogue_version: str
    period: int


class SetRow(NamedTuple):
    """One row as the caller wrote it; `row` is its number as the caller counts (a file's row, or 1, 2...).

    This and the other per-row values of a set are named tuples: a frozen dataclass sets each field
    through `object.__setattr__`, a few microseconds a row, ten thousand times a set."""

    row: int
    unit_id: str
    indicator: str
    inputs: Mapping[str, Any] = MappingProxyType({})
    not_applicable_reason: str | None = None
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    message: str


class CheckedRow(NamedTuple):
    row: int
    event: MeasurementRecorded

    @property
    def subject(self) -> Subject:
        return (self.event.unit_id, self.event.indicator)


class Decided(NamedTuple):
    row: int
    event: MeasurementRecorded
    outcome: Outcome


@dataclass(frozen=True)
class SetDecision:
    """What a set would do: the events that change something (in row order), the rows that change
    nothing, the refusals; `accepted` is what is appended."""

    to_append: tuple[Decided, ...]
    unchanged: tuple[int, ...]
    refused: tuple[RowError, ...]
    mode: Mode = "atomic"

    @property
    def accepted(self) -> tuple[Decided, ...]:
        """What is appended: every row that changes something, unless the set is atomic and a row is refused."""
        return () if self.refused and self.mode == "atomic" else self.to_append

    def count(self, outcome: Outcome) -> int:
        return sum(1 for decided in self.to_append if decided.outcome == outcome)


def check_rows(
    rows: Iterable[SetRow | RowError],
    scope: SetScope,
    catalogue: Catalogue,
    registry: UnitRegistry,
    submitted_by: str,
) -> tuple[list[CheckedRow], list[RowError]]:
    """Each row checked as a single measurement is (`kpi_core.recording`); a unit and component named
    twice is refused on its second row (which of two values is meant cannot be guessed). A row is a
    validated value (a JSON row or a file row held to the same constraints), so no command is built
    for it; each unit's place in the peer group is asked once, not once a row."""
    checked: list[CheckedRow] = []
    refused: list[RowError] = []
    first_row: dict[Subject, int] = {}
    unit_errors: dict[str, FieldError | None] = {}
    for row in rows:
        if isinstance(row, RowError):
            refused.append(row)
            continue
        earlier = first_row.get((row.unit_id, row.indicator))
        if earlier is not None:
            refused.append(RowError(row.row, "indicator", f"repeats row {earlier} ({row.unit_id}, {row.indicator})"))
            continue
        first_row[(row.unit_id, row.indicator)] = row.row
        if row.unit_id not in unit_errors:
            unit_errors[row.unit_id] = assessed_unit_error(registry, catalogue, scope.period, row.unit_id)
        try:
            check_unit(unit_errors[row.unit_id])
            event = checked_event(
                catalogue,
                catalogue_id=scope.catalogue_id,
                catalogue_version=scope.catalogue_version,
                period=scope.period,
                unit_id=row.unit_id,
                indicator=row.indicator,
                inputs=row.inputs,
                not_applicable_reason=row.not_applicable_reason,
                evidence=row.evidence,
                submitted_by=submitted_by,
            )
            checked.append(CheckedRow(row.row, event))
        except Refused as refusal:
            refused.extend(RowError(row.row, error.field, error.message) for error in refusal.errors)
        except ValidationError as invalid:
            refused.extend(
                RowError(row.row, ".".join(str(part) for part in error["loc"]) or "row", error["msg"])
                for error in invalid.errors()
            )
    return checked, refused


def decide_set(
    checked: Iterable[CheckedRow],
    refused: Iterable[RowError],
    latest: Mapping[Subject, MeasurementRecorded],
    closed_for: frozenset[str] = frozenset(),
    mode: Mode = "atomic",
) -> SetDecision:
    """Compare each checked row with the latest self-assessment of its component; units whose
    submissions are closed are refused on every row (the rule of a single measurement)."""
    refusals = list(refused)
    to_append: list[Decided] = []
    unchanged: list[int] = []
    taken, closed = Submissions(open=True), Submissions(open=False)
    for row in checked:
        try:
            decide_submission(row.event, closed if row.event.unit_id in closed_for else taken)
        except Refused as refusal:
            refusals.extend(RowError(row.row, error.field, error.message) for error in refusal.errors)
            continue
        earlier = latest.get(row.subject)
        if earlier is None:
            to_append.append(Decided(row.row, row.event, "imported"))
        elif same_statement(earlier, row.event):
            unchanged.append(row.row)
        else:
            to_append.append(Decided(row.row, row.event, "replaced"))
    refusals.sort(key=lambda error: error.row)
    return SetDecision(tuple(to_append), tuple(unchanged), tuple(refusals), mode)


def same_statement(earlier: MeasurementRecorded, event: MeasurementRecorded) -> bool:
    """The same inputs (numbers compared as numbers: 0.45 is 0.450), claim and evidence."""
    return (
        _comparable(earlier.inputs) == _comparable(event.inputs)
        and earlier.not_applicable_reason == event.not_applicable_reason
        and earlier.evidence == event.evidence
    )


def _comparable(inputs: Mapping[str, str | bool]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, str):
            try:
                values[name] = Decimal(value)
                continue
            except InvalidOperation:
                pass
        values[name] = value
    return values


@dataclass(frozen=True)
class SetSummary:
    """The import summary: counts, and each refused row with its field and message."""

    imported: int
    unchanged: int
    replaced: int
    refused: int  # rows refused (a row can have several errors)
    errors: tuple[RowError, ...]
    stored: bool

    @classmethod
    def of(cls, decision: SetDecision, *, stored: bool) -> SetSummary:
        refused_rows = len({error.row for error in decision.refused})
        return cls(
            imported=decision.count("imported"),
            unchanged=len(decision.unchanged),
            replaced=decision.count("replaced"),
            refused=refused_rows,
            errors=decision.refused,
            stored=stored,
        )


@dataclass(frozen=True)
class ImportSet:
    """Import many self-assessments of one catalogue version and period (the rows may be read lazily
    from a file); `content_sha256` is the hash of what was sent, what makes a repeated request the same."""

    scope: SetScope
    rows: Iterable[SetRow | RowError]
    content_sha256: str
    idempotency_key: str
    submitted_by: str
    mode: Mode = "atomic"
    dry_run: bool = False

    def fingerprint(self) -> str:
        scope = self.scope
        text = f"{self.content_sha256}|{scope.catalogue_id}|{scope.catalogue_version}|{scope.period}|{self.mode}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
