"""The yearly assessment cycle (003 §II–IV, 004 §VI): verification, evidence requests, deadlines,
general information and publication. Each handler decides under the append lock and appends one
event in one unit of work; a request repeated with its Idempotency-Key stores nothing new."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from kpi_core.assessment import (
    LatestVerification,
    adjusters,
    four_eyes_error,
    missing_decisions,
    not_applicable_errors,
    publication_errors,
    supersedes_error,
    units_of_period,
)
from kpi_core.catalogue import Catalogue
from kpi_core.commands import (
    ClosePeriod,
    PublishResult,
    ReopenUnit,
    ReportContext,
    RequestEvidence,
    VerifyMeasurement,
)
from kpi_core.context import check_context
from kpi_core.events import (
    ContextReported,
    DomainEvent,
    EvidenceRequested,
    MeasurementRecorded,
    PeriodClosed,
    RankedUnit,
    RankMove,
    ResultPublished,
    UnitReopened,
)
from kpi_core.measurements import FieldError, check_inputs
from kpi_core.ranking import rank_units
from kpi_core.scoring import collect_inputs, display_points, score_period
from kpi_core.units import UnitRegistry
from kpi_ingest.adapters.event_store import StoredEvent
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.errors import (
    AdjustmentNotSuperseded,
    Conflict,
    InvalidMeasurement,
    NotFound,
    RankingIncomplete,
    SelfApproval,
)
from kpi_ingest.service_layer.handlers import (
    Decide,
    Recorded,
    Submission,
    append_once,
    assessed_catalogue,
    check_assessed_unit,
)
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_ingest.service_layer.units import RegistryCache


def _indicator(catalogue: Catalogue, code: str) -> None:
    if catalogue.node(code) is None:
        raise InvalidMeasurement(f"no indicator {code}", [FieldError("indicator", f"{catalogue.id} has no {code}")])


def _refuse(errors: list[FieldError]) -> None:
    if errors:
        raise InvalidMeasurement("; ".join(f"{e.field}: {e.message}" for e in errors), errors)


async def verify_measurement(
    command: VerifyMeasurement, uow: UnitOfWork, catalogues: CatalogueRegistry, units: RegistryCache
) -> Recorded:
    """Accept the unit's latest self-assessed value, or replace it with a reason; both stay on record.
    A verification that would replace an earlier adjustment must name it (`supersedes`)."""
    subject = (
        f"{command.catalogue_id}/{command.catalogue_version}/{command.period}/{command.unit_id}/{command.indicator}"
    )
    async with uow:
        catalogue, registry = await assessed_catalogue(
            uow, catalogues, units, command.catalogue_id, command.catalogue_version, (command.unit_id, command.period)
        )
    check_assessed_unit(registry, catalogue, command.period, command.unit_id)
    _indicator(catalogue, command.indicator)
    node = catalogue.node(command.indicator)
    assert node is not None
    if command.decision == "adjusted" and not command.reason:
        raise InvalidMeasurement("an adjustment needs a reason", [FieldError("reason", "required to adjust")])
    if command.decision == "adjusted" and command.not_applicable_reason is None:
        checked, errors = check_inputs(node, command.inputs)
        _refuse(errors)
        adjusted_inputs = {name: str(value) if isinstance(value, Decimal) else value for name, value in checked.items()}
    elif command.decision == "adjusted":
        _refuse(not_applicable_errors(node, self_assessed=False, evidence_count=len(command.evidence)))
        adjusted_inputs = {}

    async def decide(uow: UnitOfWork) -> DomainEvent:
        self_assessed = await uow.workflow.latest_self_assessment(subject)
        latest = await uow.workflow.latest_verification(subject)
        superseded = supersedes_error(
            LatestVerification(latest[1].envelope.id, latest[0].decision or "", latest[0].reason) if latest else None,
            command.supersedes,
        )
        if superseded is not None:
            raise AdjustmentNotSuperseded(superseded.message, [superseded])
        if command.decision == "accepted":
            if self_assessed is None:
                raise InvalidMeasurement(
                    "there is no self-assessed value to accept",
                    [FieldError("decision", "nothing self-assessed to accept")],
                )
            inputs: dict[str, Any] = dict(self_assessed[0].inputs)
            not_applicable = self_assessed[0].not_applicable_reason
            if not_applicable is not None:
                _refuse(not_applicable_errors(node, self_assessed=False, evidence_count=1))
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
            verifies_event_id=self_assessed[1].envelope.id if self_assessed else None,
            supersedes=command.supersedes,
        )

    return await append_once(uow, Submission.of(command, command.submitted_by, command.idempotency_key), decide)


async def request_evidence(
    command: RequestEvidence, uow: UnitOfWork, catalogues: CatalogueRegistry, units: RegistryCache
) -> Recorded:
    async with uow:
        catalogue, registry = await assessed_catalogue(
            uow, catalogues, units, command.catalogue_id, command.catalogue_version, (command.unit_id, command.period)
        )
    check_assessed_unit(registry, catalogue, command.period, command.unit_id)
    _indicator(catalogue, command.indicator)
    event = EvidenceRequested(**command.model_dump(exclude={"idempotency_key"}))
    return await append_once(uow, Submission.of(command, command.requested_by, command.idempotency_key), _just(event))


def _just(event: DomainEvent) -> Decide:
    """A decision that depends on nothing read under the lock: the event was decided before it."""

    async def decide(uow: UnitOfWork) -> DomainEvent:
        return event

    return decide


async def close_period(
    command: ClosePeriod, uow: UnitOfWork, catalogues: CatalogueRegistry, units: RegistryCache
) -> Recorded:
    async with uow:
        await assessed_catalogue(uow, catalogues, units, command.catalogue_id, command.catalogue_version)

    async def closed(uow: UnitOfWork, stored: StoredEvent) -> None:
        await uow.workflow.close_period(
            command.catalogue_id, command.catalogue_version, command.period, stored.sequence
        )

    event = PeriodClosed(**command.model_dump(exclude={"idempotency_key"}))
    submission = Submission.of(command, command.closed_by, command.idempotency_key)
    return await append_once(uow, submission, _just(event), closed)


async def reopen_unit(
    command: ReopenUnit, uow: UnitOfWork, catalogues: CatalogueRegistry, units: RegistryCache
) -> Recorded:
    scope = (command.catalogue_id, command.catalogue_version, command.period)
    async with uow:
        catalogue, registry = await assessed_catalogue(
            uow, catalogues, units, *scope[:2], (command.unit_id, command.period)
        )
    check_assessed_unit(registry, catalogue, command.period, command.unit_id)

    async def decide(uow: UnitOfWork) -> DomainEvent:
        if not await uow.workflow.is_closed(*scope):
            raise Conflict("the period is not closed", [FieldError("period", "not closed")])
        return UnitReopened(**command.model_dump(exclude={"idempotency_key"}))

    async def reopened(uow: UnitOfWork, stored: StoredEvent) -> None:
        await uow.workflow.reopen_unit(*scope, command.unit_id, stored.sequence)

    submission = Submission.of(command, command.reopened_by, command.idempotency_key)
    return await append_once(uow, submission, decide, reopened)


async def report_context(
    command: ReportContext, uow: UnitOfWork, catalogues: CatalogueRegistry, units: RegistryCache
) -> Recorded:
    """General information ("Thông tin chung") for a unit and period, checked against the catalogue's fields."""
    async with uow:
        catalogue, registry = await assessed_catalogue(
            uow, catalogues, units, command.catalogue_id, command.catalogue_version, (command.unit_id, command.period)
        )
    check_assessed_unit(registry, catalogue, command.period, command.unit_id)
    values, errors = check_context(catalogue.context_fields, command.values, catalogue.id)
    _refuse(errors)
    event = ContextReported(**command.model_dump(exclude={"values", "idempotency_key"}), values=values)
    return await append_once(uow, Submission.of(command, command.submitted_by, command.idempotency_key), _just(event))


async def publish_result(
    command: PublishResult,
    uow: UnitOfWork,
    catalogues: CatalogueRegistry,
    units: RegistryCache,
    *,
    self_approval_allowed: bool = False,
) -> Recorded:
    """Freeze the complete ranking of the peer group's units as an event; a restatement names the
    publication it replaces. Every unit × scored component needs a verification decision, unless
    the approver states why it publishes without (`incomplete_reason`, recorded with what was missing)."""
    scope = (command.catalogue_id, command.catalogue_version, command.period)
    async with uow:
        catalogue, registry = await assessed_catalogue(uow, catalogues, units, *scope[:2])

    async def decide(uow: UnitOfWork) -> DomainEvent:
        # under the append lock: nothing can be appended between reading the scores and publishing them
        current = await uow.workflow.latest_publication(*scope)
        if current is not None and command.replaces != current.publication_id:
            raise Conflict(
                f"this period is published ({current.publication_id}); a restatement must name it in `replaces`",
                [FieldError("replaces", f"must be {current.publication_id}")],
            )
        if current is None and command.replaces is not None:
            raise NotFound("nothing to replace: this period was never published", [FieldError("replaces", "unknown")])
        if current is not None and not command.reason:
            raise InvalidMeasurement("a restatement needs a reason", [FieldError("reason", "required to restate")])
        head, _ = await uow.events.chain_head()
        measured = await uow.workflow.measurements(
            catalogue.id, command.catalogue_version, command.period, command.stage
        )
        members = units_of_period(registry, catalogue, command.period)
        member_ids = {unit.id for unit in members}
        decided: dict[str, set[str]] = {}
        for event, _, _ in measured:
            decided.setdefault(event.unit_id, set()).add(event.indicator)
        missing = missing_decisions(catalogue, members, decided)
        refused = publication_errors(members, missing, bool(set(decided) & member_ids), command.incomplete_reason)
        if refused:
            raise RankingIncomplete(
                refused[0].message + "".join(f"; {entry.unit_id}: {entry.count} missing" for entry in missing[:10]),
                refused,
            )
        adjusted_by = adjusters(event for event, _, _ in measured)
        self_approval = four_eyes_error(command.published_by, adjusted_by, self_approval_allowed)
        if self_approval is not None:
            raise SelfApproval(self_approval.message, [self_approval])
        ranking = await _ranking(uow, catalogue, command, registry, measured)
        return ResultPublished(
            catalogue_id=command.catalogue_id,
            catalogue_version=command.catalogue_version,
            period=command.period,
            publication_id=str(uuid.uuid4()),
            stage=command.stage,
            as_of_sequence=head,
            ranking=ranking,
            replaces=command.replaces,
            moved=_moves(current.ranking if current else (), ranking) if current else (),
            reason=command.reason,
            incomplete_reason=command.incomplete_reason if missing else None,
            missing=missing,
            adjusted_by=adjusted_by,
            published_by=command.published_by,
        )

    return await append_once(uow, Submission.of(command, command.published_by, command.idempotency_key), decide)


async def _ranking(
    uow: UnitOfWork,
    catalogue: Catalogue,
    command: PublishResult,
    registry: UnitRegistry,
    measured: list[tuple[MeasurementRecorded, str, int]],
) -> tuple[RankedUnit, ...]:
    version, period, stage = command.catalogue_version, command.period, command.stage
    current = collect_inputs(catalogue, measured)
    previous = collect_inputs(catalogue, await uow.workflow.measurements(catalogue.id, version, period - 1, stage))
    members = [unit.id for unit in units_of_period(registry, catalogue, period)]
    scores = score_period(catalogue, current, previous, units=members)
    pillars = [root.code for root in catalogue.roots if root.scored]
    return tuple(
        RankedUnit(
            unit_id=ranked.unit,
            rank=ranked.rank,
            of=ranked.of,
            total=str(display_points(ranked.total)),
            pillars={code: str(display_points(scores[ranked.unit].node_points.get(code))) for code in pillars},
        )
        for ranked in rank_units({unit: score.total for unit, score in scores.items()})
    )


def _moves(before: tuple[RankedUnit, ...], after: tuple[RankedUnit, ...]) -> tuple[RankMove, ...]:
    old = {entry.unit_id: f"{entry.rank}/{entry.of}" for entry in before}
    new = {entry.unit_id: f"{entry.rank}/{entry.of}" for entry in after}
    return tuple(
        RankMove(unit_id=unit, from_rank=old.get(unit), to_rank=new.get(unit))
        for unit in sorted(set(old) | set(new))
        if old.get(unit) != new.get(unit)
    )
