"""A verification set: an evaluator accepts a unit's whole self-assessment in one decision, except the
listed adjustments (each with its reason). Every component is decided by the one verification decider
(`kpi_core.deciders.decide_verification`), so a set obeys every rule a single verification does: an
earlier adjustment is never replaced unless named in `supersedes`, an adjustment needs its reason,
a not-applicable claim is accepted only where the source allows it. Pure."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kpi_core.catalogue import Catalogue
from kpi_core.commands import VerifyMeasurement
from kpi_core.deciders import VerificationState, decide_verification
from kpi_core.events import MeasurementRecorded
from kpi_core.measurement_sets import RowError
from kpi_core.refusals import Refused


@dataclass(frozen=True)
class ComponentState:
    """A component's verification state, and the self-assessment its latest verification decided on."""

    verification: VerificationState
    verifies: str | None = None

    @property
    def accepted_as_it_stands(self) -> bool:
        latest, current = self.verification.latest_verification, self.verification.self_assessment
        return (
            latest is not None
            and latest.decision == "accepted"
            and current is not None
            and self.verifies == current.event_id
        )


@dataclass(frozen=True)
class VerificationSetDecision:
    """The verification events of the set (acceptances, then adjustments), the components already
    accepted as they stand (nothing to append), and the refusals: an adjustment by its position in
    `adjustments` (from 1), an acceptance as row 0 with its component in `field` (`accepted.3.3`)."""

    events: tuple[MeasurementRecorded, ...]
    unchanged: tuple[str, ...]
    refused: tuple[RowError, ...]

    def count(self, decision: str) -> int:
        return sum(1 for event in self.events if event.decision == decision)


def decide_verification_set(
    adjustments: Sequence[VerifyMeasurement],
    acceptance: VerifyMeasurement,
    catalogue: Catalogue,
    states: Mapping[str, ComponentState],
) -> VerificationSetDecision:
    """`acceptance` is the template of an accepting verification (scope, unit, evaluator, evidence);
    `states` holds each self-assessed or verified component of the unit. A component already accepted
    as it stands is left as it is; one the evaluator adjusted earlier is refused unless listed (its
    adjustment is never replaced silently)."""
    events: list[MeasurementRecorded] = []
    unchanged: list[str] = []
    refused: list[RowError] = []
    adjusted = {command.indicator for command in adjustments}
    for code in sorted(states, key=_order(catalogue)):
        state = states[code]
        if code in adjusted or state.verification.self_assessment is None:
            continue
        if state.accepted_as_it_stands:
            unchanged.append(code)
            continue
        try:
            command = acceptance.model_copy(update={"indicator": code, "decision": "accepted"})
            events.append(decide_verification(command, catalogue, state.verification))
        except Refused as refusal:
            refused.extend(RowError(0, f"accepted.{code}", error.message) for error in refusal.errors)
    seen: set[str] = set()
    for number, command in enumerate(adjustments, start=1):
        if command.indicator in seen:
            refused.append(RowError(number, "indicator", f"{command.indicator} is adjusted twice in this set"))
            continue
        seen.add(command.indicator)
        try:
            state = states.get(command.indicator, ComponentState(VerificationState()))
            events.append(decide_verification(command, catalogue, state.verification))
        except Refused as refusal:
            refused.extend(RowError(number, error.field, error.message) for error in refusal.errors)
    return VerificationSetDecision(tuple(events), tuple(unchanged), tuple(refused))


def _order(catalogue: Catalogue) -> Callable[[str], int]:
    position = {node.code: index for index, node in enumerate(catalogue.nodes)}
    return lambda code: position.get(code, len(position))


@dataclass(frozen=True)
class VerifyUnit:
    """Accept a unit's whole self-assessment except `adjustments`; `acceptance` carries the scope, the
    unit, the evaluator and the evidence of the acceptances (its indicator is not used)."""

    acceptance: VerifyMeasurement
    adjustments: tuple[VerifyMeasurement, ...]
    fingerprint: str
    dry_run: bool = False
