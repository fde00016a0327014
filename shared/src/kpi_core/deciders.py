"""The decisions of the assessment cycle (003 §II–IV) as pure functions: each takes the command, the
catalogue version and the state the log holds, and returns the event to append or raises `Refused`
naming each field it is about. The ingest handlers load the state under the append lock, call the
decider, and append what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kpi_core.assessment import (
    LatestVerification,
    adjusters,
    four_eyes_error,
    missing_decisions,
    not_applicable_errors,
    publication_errors,
    supersedes_error,
)
from kpi_core.catalogue import Catalogue, Node
from kpi_core.commands import PublishResult, ReopenUnit, ReportContext, RequestEvidence, VerifyMeasurement
from kpi_core.context import check_context
from kpi_core.events import (
    ContextReported,
    EvidenceRequested,
    MeasurementRecorded,
    ResultPublished,
    UnitReopened,
)
from kpi_core.measurements import FieldError, check_inputs
from kpi_core.refusals import Refused
from kpi_core.units import Unit


def _invalid(errors: list[FieldError]) -> None:
    if errors:
        raise Refused("invalid", "; ".join(f"{error.field}: {error.message}" for error in errors), errors)


def _indicator(catalogue: Catalogue, code: str) -> Node:
    node = catalogue.node(code)
    if node is None:
        raise Refused("invalid", f"no indicator {code}", [FieldError("indicator", f"{catalogue.id} has no {code}")])
    return node


@dataclass(frozen=True)
class SelfAssessment:
    """The unit's latest self-assessed value of a component, and the id of the event that recorded it."""

    event: MeasurementRecorded
    event_id: str


@dataclass(frozen=True)
class VerificationState:
    """What a verification decides on: the component's latest self-assessment and latest verification."""

    self_assessment: SelfAssessment | None = None
    latest_verification: LatestVerification | None = None


def check_verification(command: VerifyMeasurement, catalogue: Catalogue) -> dict[str, str | bool]:
    """What a verification is refused for whatever the log holds: an unknown indicator, an adjustment
    without a reason, adjusted inputs the rule refuses, a not-applicable claim the source does not
    allow. Returns the adjusted inputs as the event stores them (none when accepting)."""
    node = _indicator(catalogue, command.indicator)
    if command.decision != "adjusted":
        return {}
    if not command.reason:
        raise Refused("invalid", "an adjustment needs a reason", [FieldError("reason", "required to adjust")])
    if command.not_applicable_reason is not None:
        _invalid(not_applicable_errors(node, self_assessed=False, evidence_count=len(command.evidence)))
        return {}
    checked, errors = check_inputs(node, command.inputs)
    _invalid(errors)
    return {name: str(value) if isinstance(value, Decimal) else value for name, value in checked.items()}


def decide_verification(
    command: VerifyMeasurement, catalogue: Catalogue, state: VerificationState
) -> MeasurementRecorded:
    """Accept the unit's latest self-assessed value, or replace it with a reason; a verification that
    would replace an earlier adjustment must name it (`supersedes`)."""
    adjusted_inputs = check_verification(command, catalogue)
    superseded = supersedes_error(state.latest_verification, command.supersedes)
    if superseded is not None:
        raise Refused("not_superseded", superseded.message, [superseded])
    self_assessed = state.self_assessment
    if command.decision == "accepted":
        if self_assessed is None:
            raise Refused(
                "invalid",
                "there is no self-assessed value to accept",
                [FieldError("decision", "nothing self-assessed to accept")],
            )
        inputs = dict(self_assessed.event.inputs)
        not_applicable = self_assessed.event.not_applicable_reason
        if not_applicable is not None:
            node = _indicator(catalogue, command.indicator)
            _invalid(not_applicable_errors(node, self_assessed=False, evidence_count=1))
    else:
        inputs, not_applicable = adjusted_inputs, command.not_applicable_reason
    return MeasurementRecorded(
        catalogue_id=command.catalogue_id,
        catalogue_version=command.catalogue_version,
        period=command.period,
        unit_id=command.unit_id,
        indicator=command.indicator,
        stage="verification",
        inputs=inputs,
        not_applicable_reason=not_applicable,
        evidence=command.evidence,
        submitted_by=command.submitted_by,
        decision=command.decision,
        reason=command.reason,
        verifies_event_id=self_assessed.event_id if self_assessed else None,
        supersedes=command.supersedes,
    )


def decide_evidence_request(command: RequestEvidence, catalogue: Catalogue) -> EvidenceRequested:
    """An evaluator may ask for evidence on any component the catalogue version has."""
    _indicator(catalogue, command.indicator)
    return EvidenceRequested(**command.model_dump(exclude={"idempotency_key"}))


@dataclass(frozen=True)
class PeriodState:
    """Where the period's submissions stand: closed or not."""

    closed: bool


def decide_reopening(command: ReopenUnit, state: PeriodState) -> UnitReopened:
    """Only a closed period can be reopened for a unit."""
    if not state.closed:
        raise Refused("conflict", "the period is not closed", [FieldError("period", "not closed")])
    return UnitReopened(**command.model_dump(exclude={"idempotency_key"}))


def decide_context(command: ReportContext, catalogue: Catalogue) -> ContextReported:
    """General information ("Thông tin chung"), each value checked by the type its catalogue declares."""
    values, errors = check_context(catalogue.context_fields, command.values, catalogue.id)
    _invalid(errors)
    return ContextReported(**command.model_dump(exclude={"values", "idempotency_key"}), values=values)


@dataclass(frozen=True)
class PublicationState:
    """What a publication decides on: the publication in force (if any), the log's head (the cut),
    the period's measurements of the published stage, and the peer group's units of the period."""

    current_publication_id: str | None
    head: int
    measurements: tuple[MeasurementRecorded, ...]
    members: tuple[Unit, ...]


def decide_publication(
    command: PublishResult,
    catalogue: Catalogue,
    state: PublicationState,
    *,
    publication_id: str,
    self_approval_allowed: bool,
) -> ResultPublished:
    """Publish at the cut `state.head`; nothing is ranked here (scoring freezes the ranking at the cut).
    A restatement names the publication it replaces, with a reason. Every unit × scored component
    needs a verification decision, unless the approver states why it publishes without
    (`incomplete_reason`, recorded with what was missing). Who adjusted may not publish (four eyes)."""
    current = state.current_publication_id
    if current is not None and command.replaces != current:
        raise Refused(
            "conflict",
            f"this period is published ({current}); a restatement must name it in `replaces`",
            [FieldError("replaces", f"must be {current}")],
        )
    if current is None and command.replaces is not None:
        raise Refused(
            "not_found", "nothing to replace: this period was never published", [FieldError("replaces", "unknown")]
        )
    if current is not None and not command.reason:
        raise Refused("invalid", "a restatement needs a reason", [FieldError("reason", "required to restate")])
    member_ids = {unit.id for unit in state.members}
    decided: dict[str, set[str]] = {}
    for event in state.measurements:
        decided.setdefault(event.unit_id, set()).add(event.indicator)
    missing = missing_decisions(catalogue, state.members, decided)
    refused = publication_errors(state.members, missing, bool(set(decided) & member_ids), command.incomplete_reason)
    if refused:
        raise Refused(
            "incomplete",
            refused[0].message + "".join(f"; {entry.unit_id}: {entry.count} missing" for entry in missing[:10]),
            refused,
        )
    adjusted_by = adjusters(state.measurements)
    self_approval = four_eyes_error(command.published_by, adjusted_by, self_approval_allowed)
    if self_approval is not None:
        raise Refused("self_approval", self_approval.message, [self_approval])
    return ResultPublished(
        catalogue_id=command.catalogue_id,
        catalogue_version=command.catalogue_version,
        period=command.period,
        publication_id=publication_id,
        stage=command.stage,
        as_of_sequence=state.head,
        replaces=command.replaces,
        reason=command.reason,
        incomplete_reason=command.incomplete_reason if missing else None,
        missing=missing,
        adjusted_by=adjusted_by,
        published_by=command.published_by,
    )
