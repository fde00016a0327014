"""Ingest handlers: one unit of work each, an explicit commit, events appended with their outbox rows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from kpi_core.catalogue import Catalogue, CatalogueInvalid, parse_catalogue
from kpi_core.commands import RecordMeasurement, RegisterCatalogueVersion
from kpi_core.events import SUBJECT_TOKEN, CatalogueVersionRegistered, MeasurementRecorded
from kpi_core.measurements import FieldError, check_inputs
from kpi_ingest.adapters.event_store import StoredEvent
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.errors import (
    CatalogueVersionExists,
    IdempotencyConflict,
    InvalidCatalogue,
    InvalidMeasurement,
    PeriodClosedError,
    UnknownCatalogue,
)
from kpi_ingest.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Recorded:
    event: StoredEvent
    replayed: bool


Guard = Callable[[UnitOfWork], Awaitable[None]]


def request_fingerprint(command: BaseModel) -> str:
    """What makes two requests "the same body" for idempotency: everything but the key itself."""
    body = command.model_dump(mode="json", exclude={"idempotency_key"})
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


async def earlier_request(uow: UnitOfWork, actor: str, key: str, fingerprint: str) -> Recorded | None:
    """The event an earlier request with this Idempotency-Key stored, if any (409 if its body differed)."""
    earlier = await uow.events.by_idempotency_key(actor, key)
    return _replay(earlier, fingerprint) if earlier is not None else None


async def append_once(
    uow: UnitOfWork,
    event: MeasurementRecorded,
    *,
    actor: str,
    idempotency_key: str,
    fingerprint: str,
    guard: Guard | None = None,
) -> Recorded:
    """Append under the write lock after `guard` passes; a concurrent twin with the same key replays."""
    try:
        async with uow.writing():
            await uow.events.lock()
            if guard is not None:
                await guard(uow)
            stored = await uow.events.append(
                event,
                actor=actor,
                idempotency_key=idempotency_key,
                request_sha256=fingerprint,
                catalogue_id=event.catalogue_id,
                unit_id=event.unit_id,
            )
            await uow.commit()
            return Recorded(stored, replayed=False)
    except IntegrityError:
        # A concurrent request with the same key committed first: answer as its replay.
        async with uow:
            earlier = await earlier_request(uow, actor, idempotency_key, fingerprint)
        if earlier is None:
            raise
        return earlier


async def record_measurement(command: RecordMeasurement, uow: UnitOfWork, catalogues: CatalogueRegistry) -> Recorded:
    fingerprint = request_fingerprint(command)
    async with uow:
        earlier = await earlier_request(uow, command.submitted_by, command.idempotency_key, fingerprint)
        if earlier is not None:
            return earlier
        catalogue = await catalogues.get(uow, command.catalogue_id, command.catalogue_version)
        if command.responds_to is not None:
            await _check_response(uow, command)
    event = _validated_event(command, catalogue)

    async def submissions_open(uow: UnitOfWork) -> None:
        scope = (command.catalogue_id, command.catalogue_version, command.period)
        if not await uow.workflow.accepts_submissions(*scope, command.unit_id):
            raise PeriodClosedError(
                f"period {command.period} of {command.catalogue_id}@{command.catalogue_version} is closed for "
                f"submissions; an evaluator can reopen unit {command.unit_id}",
                [FieldError("period", "closed for submissions")],
            )

    return await append_once(
        uow,
        event,
        actor=command.submitted_by,
        idempotency_key=command.idempotency_key,
        fingerprint=fingerprint,
        guard=submissions_open,
    )


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


def _validated_event(command: RecordMeasurement, catalogue: Catalogue | None) -> MeasurementRecorded:
    if catalogue is None:
        raise UnknownCatalogue(
            f"catalogue {command.catalogue_id} version {command.catalogue_version} is not registered",
            [FieldError("catalogue_id", "unknown catalogue version")],
        )
    errors: list[FieldError] = []
    if not SUBJECT_TOKEN.match(command.unit_id):
        errors.append(FieldError("unit_id", "lowercase letters, digits, '-' and '_' only"))
    node = catalogue.node(command.indicator)
    if node is None:
        errors.append(
            FieldError("indicator", f"{catalogue.id}@{catalogue.version} has no indicator {command.indicator}")
        )
        raise InvalidMeasurement(f"unknown indicator {command.indicator}", errors)
    if not node.scored:
        errors.append(FieldError("indicator", f"{node.code} is not scored in this catalogue version"))
    inputs: dict[str, Any] = {}
    if command.not_applicable_reason is not None:
        if command.inputs:
            errors.append(FieldError("inputs", "a not-applicable declaration carries no inputs"))
    else:
        inputs, input_errors = check_inputs(node, command.inputs)
        errors.extend(input_errors)
    if errors:
        raise InvalidMeasurement("; ".join(f"{error.field}: {error.message}" for error in errors), errors)
    return MeasurementRecorded(
        catalogue_id=command.catalogue_id,
        catalogue_version=command.catalogue_version,
        period=command.period,
        unit_id=command.unit_id,
        indicator=command.indicator,
        stage=command.stage,
        inputs={name: str(value) if isinstance(value, Decimal) else value for name, value in inputs.items()},
        not_applicable_reason=command.not_applicable_reason,
        evidence=command.evidence,
        submitted_by=command.submitted_by,
        responds_to=command.responds_to,
    )


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
            raise CatalogueVersionExists(
                f"{catalogue.id}@{catalogue.version} is already registered"
                + ("" if existing[0] == content_sha256 else " with different content; register a new version"),
                [FieldError("version", "already registered")],
            )
        event = CatalogueVersionRegistered(
            catalogue_id=catalogue.id,
            version=catalogue.version,
            content_sha256=content_sha256,
            document=catalogue.document(),
            registered_by=command.registered_by,
        )
        stored = await uow.events.append(event, actor=command.registered_by, catalogue_id=catalogue.id)
        await uow.events.record_catalogue_version(catalogue.id, catalogue.version, content_sha256, stored.sequence)
        await uow.commit()
    catalogues.remember(catalogue)
    return stored
