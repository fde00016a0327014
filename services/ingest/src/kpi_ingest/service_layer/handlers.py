"""Ingest handlers: one unit of work each, an explicit commit, events appended with their outbox rows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from kpi_core.assessment import assessed_unit_error
from kpi_core.catalogue import Catalogue, CatalogueInvalid, parse_catalogue
from kpi_core.commands import RecordMeasurement, RegisterCatalogueVersion
from kpi_core.events import CatalogueVersionRegistered, DomainEvent, MeasurementRecorded
from kpi_core.measurements import FieldError
from kpi_core.recording import Submissions, check_stage, decide_submission, measurement_event
from kpi_core.units import UnitRegistry
from kpi_ingest.adapters.event_store import StoredEvent
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.errors import (
    CatalogueVersionExists,
    IdempotencyConflict,
    InvalidCatalogue,
    InvalidMeasurement,
    NotInPeerGroup,
    UnknownCatalogue,
    refusals_as_ingest_errors,
    version_taken,
)
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_ingest.service_layer.units import RegistryCache


@dataclass(frozen=True)
class Recorded:
    event: StoredEvent
    replayed: bool


Decide = Callable[[UnitOfWork], Awaitable[DomainEvent]]
AfterAppend = Callable[[UnitOfWork, StoredEvent], Awaitable[None]]


def request_fingerprint(command: BaseModel) -> str:
    """What makes two requests "the same body" for idempotency: everything but the key itself."""
    body = command.model_dump(mode="json", exclude={"idempotency_key"})
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def earlier_request(uow: UnitOfWork, actor: str, key: str, fingerprint: str) -> Recorded | None:
    """The event an earlier request with this Idempotency-Key stored, if any (409 if its body differed)."""
    earlier = await uow.events.by_idempotency_key(actor, key)
    return _replay(earlier, fingerprint) if earlier is not None else None


@dataclass(frozen=True)
class Submission:
    """Who asks, under which Idempotency-Key, with which body: what makes a repeated request store one event."""

    actor: str
    idempotency_key: str
    fingerprint: str

    @classmethod
    def of(cls, command: BaseModel, actor: str, idempotency_key: str) -> Submission:
        return cls(actor, idempotency_key, request_fingerprint(command))


async def append_once(
    uow: UnitOfWork, submission: Submission, decide: Decide, after: AfterAppend | None = None
) -> Recorded:
    """Decide and append under the write lock; `after` updates ingest's own tables in the same
    transaction. A request repeated with its Idempotency-Key replays the first event."""
    try:
        async with uow.writing():
            await uow.events.lock()
            # looked up under the lock, in the append's own transaction: one round trip less per request
            earlier = await earlier_request(uow, submission.actor, submission.idempotency_key, submission.fingerprint)
            if earlier is not None:
                return earlier
            event = await decide(uow)
            stored = await uow.events.append(
                event, idempotency_key=submission.idempotency_key, request_sha256=submission.fingerprint
            )
            if after is not None:
                await after(uow, stored)
            await uow.commit()
            return Recorded(stored, replayed=False)
    except IntegrityError:
        # A concurrent request with the same key committed first: answer as its replay.
        async with uow:
            earlier = await earlier_request(uow, submission.actor, submission.idempotency_key, submission.fingerprint)
        if earlier is None:
            raise
        return earlier


async def assessed_catalogue(
    uow: UnitOfWork,
    catalogues: CatalogueRegistry,
    units: RegistryCache,
    catalogue_id: str,
    version: str,
    unit_of_period: tuple[str, int] | None = None,
) -> tuple[Catalogue, UnitRegistry]:
    """The catalogue version a command is about, and the unit registry to check its unit against.
    A unit the cached registry does not know is looked up once more in the log, so a list another
    instance registered a moment ago is never refused from a stale cache."""
    catalogue = await catalogues.get(uow, catalogue_id, version)
    if catalogue is None:
        raise UnknownCatalogue(
            f"catalogue {catalogue_id} version {version} is not registered",
            [FieldError("catalogue_id", "unknown catalogue version")],
        )
    registry = await units.get(uow)
    if unit_of_period is None or assessed_unit_error(registry, catalogue, unit_of_period[1], unit_of_period[0]):
        units.expire()
        registry = await units.get(uow)
    return catalogue, registry


def check_assessed_unit(registry: UnitRegistry, catalogue: Catalogue, period: int, unit_id: str) -> None:
    error = assessed_unit_error(registry, catalogue, period, unit_id)
    if error is not None:
        raise NotInPeerGroup(error.message, [error])


async def record_measurement(
    command: RecordMeasurement, uow: UnitOfWork, catalogues: CatalogueRegistry, units: RegistryCache
) -> Recorded:
    with refusals_as_ingest_errors():
        check_stage(command)
    async with uow:
        catalogue, registry = await assessed_catalogue(
            uow, catalogues, units, command.catalogue_id, command.catalogue_version, (command.unit_id, command.period)
        )
        if command.responds_to is not None:
            await _check_response(uow, command)
    event = _validated_event(command, catalogue, registry)

    async def submissions_open(uow: UnitOfWork) -> DomainEvent:
        scope = (command.catalogue_id, command.catalogue_version, command.period)
        submissions = Submissions(await uow.workflow.accepts_submissions(*scope, command.unit_id))
        with refusals_as_ingest_errors():
            return decide_submission(event, submissions)

    submission = Submission.of(command, command.submitted_by, command.idempotency_key)
    return await append_once(uow, submission, submissions_open)


async def _check_response(uow: UnitOfWork, command: RecordMeasurement) -> None:
    request = await uow.workflow.evidence_request(command.responds_to or "")
    if request is None or (request.unit_id, request.indicator, request.period) != (
        command.unit_id,
        command.indicator,
        command.period,
    ):
        raise InvalidMeasurement(
            "responds_to must name an evidence request for this unit, indicator and period",
            [FieldError("responds_to", "no such evidence request for this component")],
        )


def _replay(earlier: StoredEvent, fingerprint: str) -> Recorded:
    if earlier.request_sha256 != fingerprint:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used for a different request", [FieldError("Idempotency-Key", "reused")]
        )
    return Recorded(earlier, replayed=True)


def _validated_event(command: RecordMeasurement, catalogue: Catalogue, registry: UnitRegistry) -> MeasurementRecorded:
    with refusals_as_ingest_errors():
        return measurement_event(command, catalogue, registry)


async def register_catalogue_version(
    command: RegisterCatalogueVersion, uow: UnitOfWork, catalogues: CatalogueRegistry, *, allow_existing: bool = False
) -> StoredEvent:
    """Validate and register a catalogue version; a registered version can never change."""
    try:
        catalogue = parse_catalogue(command.document)
    except CatalogueInvalid as invalid:
        raise InvalidCatalogue(str(invalid), [FieldError("document", defect) for defect in invalid.defects]) from None
    content_sha256 = catalogue.content_hash()
    async with uow.writing():
        await uow.events.lock()
        existing = await uow.events.catalogue_version(catalogue.id, catalogue.version)
        if existing is not None:
            if allow_existing and existing[0] == content_sha256:
                catalogues.remember(catalogue)
                return existing[1]
            same = existing[0] == content_sha256
            raise version_taken(f"{catalogue.id}@{catalogue.version}", same, CatalogueVersionExists)
        event = CatalogueVersionRegistered(
            catalogue_id=catalogue.id,
            version=catalogue.version,
            content_sha256=content_sha256,
            document=catalogue.document(),
            registered_by=command.registered_by,
        )
        stored = await uow.events.append(event)
        await uow.events.record_catalogue_version(catalogue.id, catalogue.version, content_sha256, stored.sequence)
        await uow.commit()
    catalogues.remember(catalogue)
    return stored
