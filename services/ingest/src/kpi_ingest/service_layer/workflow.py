"""The yearly assessment cycle (003 §II–IV, 004 §VI): verification, evidence requests, deadlines,
general information and publication. Each handler loads the state its decision needs under the
append lock, calls the pure decider (`kpi_core.deciders`) and appends the one event it returns in
one unit of work; a request repeated with its Idempotency-Key stores nothing new."""

from __future__ import annotations

import uuid

from kpi_core.assessment import LatestVerification, units_of_period
from kpi_core.commands import (
    ClosePeriod,
    PublishResult,
    ReopenUnit,
    ReportContext,
    RequestEvidence,
    VerifyMeasurement,
)
from kpi_core.deciders import (
    PeriodState,
    PublicationState,
    SelfAssessment,
    VerificationState,
    check_verification,
    decide_context,
    decide_evidence_request,
    decide_publication,
    decide_reopening,
    decide_verification,
)
from kpi_core.events import DomainEvent, PeriodClosed
from kpi_ingest.adapters.event_store import StoredEvent
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.errors import refusals_as_ingest_errors
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
    with refusals_as_ingest_errors():
        check_verification(command, catalogue)  # what no state can make right is refused before the lock

    async def decide(uow: UnitOfWork) -> DomainEvent:
        self_assessed = await uow.workflow.latest_self_assessment(subject)
        latest = await uow.workflow.latest_verification(subject)
        state = VerificationState(
            SelfAssessment(self_assessed[0], self_assessed[1].envelope.id) if self_assessed else None,
            LatestVerification(latest[1].envelope.id, latest[0].decision or "", latest[0].reason) if latest else None,
        )
        with refusals_as_ingest_errors():
            return decide_verification(command, catalogue, state)

    return await append_once(uow, Submission.of(command, command.submitted_by, command.idempotency_key), decide)


async def request_evidence(
    command: RequestEvidence, uow: UnitOfWork, catalogues: CatalogueRegistry, units: RegistryCache
) -> Recorded:
    async with uow:
        catalogue, registry = await assessed_catalogue(
            uow, catalogues, units, command.catalogue_id, command.catalogue_version, (command.unit_id, command.period)
        )
    check_assessed_unit(registry, catalogue, command.period, command.unit_id)
    with refusals_as_ingest_errors():
        event = decide_evidence_request(command, catalogue)
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
        state = PeriodState(closed=await uow.workflow.is_closed(*scope))
        with refusals_as_ingest_errors():
            return decide_reopening(command, state)

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
    with refusals_as_ingest_errors():
        event = decide_context(command, catalogue)
    return await append_once(uow, Submission.of(command, command.submitted_by, command.idempotency_key), _just(event))


async def publish_result(
    command: PublishResult,
    uow: UnitOfWork,
    catalogues: CatalogueRegistry,
    units: RegistryCache,
    *,
    self_approval_allowed: bool = False,
) -> Recorded:
    """Publish the ranking of the peer group's units at a cut of the log (every event before this
    one); scoring freezes the ranking at that cut (`vn.kpi.result.frozen.v1`), nothing is scored
    here. A restatement names the publication it replaces. Every unit × scored component needs a
    verification decision, unless the approver states why it publishes without (`incomplete_reason`,
    recorded with what was missing)."""
    scope = (command.catalogue_id, command.catalogue_version, command.period)
    async with uow:
        catalogue, registry = await assessed_catalogue(uow, catalogues, units, *scope[:2])

    async def decide(uow: UnitOfWork) -> DomainEvent:
        # under the append lock: the cut is the head, and nothing can be appended before this event
        current = await uow.workflow.latest_publication(*scope)
        head, _ = await uow.events.chain_head()
        measured = await uow.workflow.measurements(*scope, command.stage)
        state = PublicationState(
            current_publication_id=current.publication_id if current else None,
            head=head,
            measurements=tuple(event for event, _, _ in measured),
            members=units_of_period(registry, catalogue, command.period),
        )
        with refusals_as_ingest_errors():
            return decide_publication(
                command,
                catalogue,
                state,
                publication_id=str(uuid.uuid4()),
                self_approval_allowed=self_approval_allowed,
            )

    return await append_once(uow, Submission.of(command, command.published_by, command.idempotency_key), decide)
