"""The integrity rules of an assessment (003 §II.2): who is assessed, what a not-applicable claim
needs, when a verification may replace another, and when a ranking is complete enough to publish.

Pure functions of values: the ingest handlers load the state, call these, and append what passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kpi_core.catalogue import Catalogue, Node
from kpi_core.events import MeasurementRecorded, MissingDecisions, PeriodClosed, UnitReopened
from kpi_core.measurements import FieldError
from kpi_core.units import Unit, UnitRegistry

FIRST_MISSING_SHOWN = 10


def assessed_unit_error(registry: UnitRegistry, catalogue: Catalogue, period: int, unit_id: str) -> FieldError | None:
    """A unit may be assessed in a catalogue version and period only if its peer group has it then."""
    why = registry.membership_error(catalogue.peer_group, period, unit_id, catalogue.period_reference_day)
    return FieldError("unit_id", why) if why else None


def units_of_period(registry: UnitRegistry, catalogue: Catalogue, period: int) -> tuple[Unit, ...]:
    return registry.members(catalogue.peer_group, period, catalogue.period_reference_day)


def not_applicable_errors(node: Node, *, self_assessed: bool, evidence_count: int) -> list[FieldError]:
    """A not-applicable declaration is a claim the source must allow; a unit's claim needs evidence."""
    if not node.not_applicable:
        return [
            FieldError(
                "not_applicable_reason",
                f"{node.code} cannot be declared not applicable: the source applies it to every unit",
            )
        ]
    if self_assessed and evidence_count == 0:
        return [FieldError("evidence", "a not-applicable claim needs evidence (the document that shows it)")]
    return []


@dataclass(frozen=True)
class LatestVerification:
    event_id: str
    decision: str
    reason: str | None


def supersedes_error(latest: LatestVerification | None, supersedes: str | None) -> FieldError | None:
    """Replacing an evaluator's adjustment must name it, so its reason is never lost silently."""
    if latest is None or latest.decision != "adjusted":
        if supersedes is not None and (latest is None or supersedes != latest.event_id):
            return FieldError("supersedes", "names no verification of this component that it could replace")
        return None
    if supersedes != latest.event_id:
        return FieldError(
            "supersedes",
            f"this component was adjusted by verification {latest.event_id} ({latest.reason}); "
            "name it in `supersedes` to replace it",
        )
    return None


def missing_decisions(
    catalogue: Catalogue, units: Iterable[Unit], decided: Mapping[str, set[str]]
) -> tuple[MissingDecisions, ...]:
    """Per unit, the scored components that have no verification decision (first few, and how many)."""
    required = [node.code for node in catalogue.leaves() if _scored(catalogue, node)]
    missing = []
    for unit in units:
        lacking = [code for code in required if code not in decided.get(unit.id, set())]
        if lacking:
            missing.append(
                MissingDecisions(unit_id=unit.id, count=len(lacking), first=tuple(lacking[:FIRST_MISSING_SHOWN]))
            )
    return tuple(missing)


def _scored(catalogue: Catalogue, node: Node) -> bool:
    """Scored itself and under scored ancestors (provincial pillar 9 is listed but not scored)."""
    current: Node | None = node
    while current is not None:
        if not current.scored:
            return False
        current = catalogue.node(current.parent) if current.parent else None
    return True


def publication_errors(
    units: tuple[Unit, ...], missing: tuple[MissingDecisions, ...], decided_any: bool, incomplete_reason: str | None
) -> list[FieldError]:
    """An empty ranking is never published; an incomplete one only with the approver's stated reason."""
    if not units:
        return [FieldError("period", "the peer group has no units in this period: nothing to rank")]
    if not decided_any:
        return [FieldError("period", "no component has a verification decision: the ranking would be empty")]
    if missing and not incomplete_reason:
        total = sum(entry.count for entry in missing)
        return [
            FieldError(
                "incomplete_reason",
                f"{total} components of {len(missing)} units have no verification decision; "
                "verify them, or publish with `incomplete_reason`",
            )
        ]
    return []


def adjusters(verifications: Iterable[MeasurementRecorded]) -> tuple[str, ...]:
    """Who replaced self-assessed values in a period's verification: what four eyes looks at."""
    return tuple(sorted({event.submitted_by for event in verifications if event.decision == "adjusted"}))


def four_eyes_error(approver: str, adjusted_by: tuple[str, ...], self_approval_allowed: bool) -> FieldError | None:
    """The one who adjusted a verification may not also publish it, unless the deployment allows it."""
    if approver in adjusted_by and not self_approval_allowed:
        return FieldError(
            "published_by", f"{approver} adjusted verifications of this period; another approver must publish it"
        )
    return None


@dataclass(frozen=True)
class SubmissionWindows:
    """Where submissions stand, as the log says: closed periods and the units reopened in them,
    each with the sequence of the event that made it so."""

    closed: dict[tuple[str, str, int], int]
    reopened: dict[tuple[str, str, int, str], int]


def submission_windows(events: Iterable[tuple[int, PeriodClosed | UnitReopened]]) -> SubmissionWindows:
    """Fold the closings and reopenings in sequence order: a closing ends every reopening of its period."""
    closed: dict[tuple[str, str, int], int] = {}
    reopened: dict[tuple[str, str, int, str], int] = {}
    for sequence, event in sorted(events, key=lambda pair: pair[0]):
        scope = (event.catalogue_id, event.catalogue_version, event.period)
        if isinstance(event, PeriodClosed):
            closed[scope] = sequence
            reopened = {key: value for key, value in reopened.items() if key[:3] != scope}
        else:
            reopened[(*scope, event.unit_id)] = sequence
    return SubmissionWindows(closed, reopened)
