"""The yearly assessment cycle (003 §II–IV, 004 §VI): verification, evidence requests, deadlines,
general information and publication. Each handler appends one event in one unit of work."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from kpi_core.catalogue import Catalogue
from kpi_core.commands import (
    ClosePeriod,
    PublishResult,
    ReopenUnit,
    ReportContext,
    RequestEvidence,
    VerifyMeasurement,
)
from kpi_core.events import (
    ContextReported,
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
from kpi_ingest.adapters.event_store import StoredEvent
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.errors import Conflict, InvalidMeasurement, NotFound, UnknownCatalogue
from kpi_ingest.service_layer.handlers import Recorded, append_once, earlier_request, request_fingerprint
from kpi_ingest.service_layer.unit_of_work import UnitOfWork


async def _catalogue(uow: UnitOfWork, catalogues: CatalogueRegistry, catalogue_id: str, version: str) -> Catalogue:
    catalogue = await catalogues.get(uow, catalogue_id, version)
    if catalogue is None:
        raise UnknownCatalogue(
            f"catalogue {catalogue_id} version {version} is not registered",
            [FieldError("catalogue_id", "unknown catalogue version")],
        )
    return catalogue


def _indicator(catalogue: Catalogue, code: str) -> None:
    if catalogue.node(code) is None:
        raise InvalidMeasurement(f"no indicator {code}", [FieldError("indicator", f"{catalogue.id} has no {code}")])


async def _append(uow: UnitOfWork, event: EvidenceRequested | ContextReported, actor: str) -> StoredEvent:
    async with uow.writing():
        await uow.events.lock()
        stored = await uow.events.append(event, actor=actor, catalogue_id=event.catalogue_id, unit_id=event.unit_id)
        await uow.commit()
    return stored


async def verify_measurement(command: VerifyMeasurement, uow: UnitOfWork, catalogues: CatalogueRegistry) -> Recorded:
    """Accept the unit's latest self-assessed value, or replace it with a reason; both stay on record."""
    fingerprint = request_fingerprint(command)
    subject = (
        f"{command.catalogue_id}/{command.catalogue_version}/{command.period}/{command.unit_id}/{command.indicator}"
    )
    async with uow:
        earlier = await earlier_request(uow, command.submitted_by, command.idempotency_key, fingerprint)
        if earlier is not None:
            return earlier
        catalogue = await _catalogue(uow, catalogues, command.catalogue_id, command.catalogue_version)
        self_assessed = await uow.workflow.latest_self_assessment(subject)
    _indicator(catalogue, command.indicator)
    if command.decision == "accepted":
        if self_assessed is None:
            raise InvalidMeasurement(
                "there is no self-assessed value to accept", [FieldError("decision", "nothing self-assessed to accept")]
            )
        inputs: dict[str, Any] = dict(self_assessed[0].inputs)
        not_applicable = self_assessed[0].not_applicable_reason
    else:
        if not command.reason:
            raise InvalidMeasurement("an adjustment needs a reason", [FieldError("reason", "required to adjust")])
        not_applicable = command.not_applicable_reason
        inputs = {}
        if not_applicable is None:
            node = catalogue.node(command.indicator)
            assert node is not None
            checked, errors = check_inputs(node, command.inputs)
            if errors:
                raise InvalidMeasurement("; ".join(f"{e.field}: {e.message}" for e in errors), errors)
            inputs = {name: str(value) if isinstance(value, Decimal) else value for name, value in checked.items()}
    event = MeasurementRecorded(
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
    )
    return await append_once(
        uow, event, actor=command.submitted_by, idempotency_key=command.idempotency_key, fingerprint=fingerprint
    )


async def request_evidence(command: RequestEvidence, uow: UnitOfWork, catalogues: CatalogueRegistry) -> StoredEvent:
    async with uow:
        catalogue = await _catalogue(uow, catalogues, command.catalogue_id, command.catalogue_version)
    _indicator(catalogue, command.indicator)
    event = EvidenceRequested(**command.model_dump())
    return await _append(uow, event, command.requested_by)


async def close_period(command: ClosePeriod, uow: UnitOfWork, catalogues: CatalogueRegistry) -> StoredEvent:
    async with uow:
        await _catalogue(uow, catalogues, command.catalogue_id, command.catalogue_version)
    async with uow.writing():
        await uow.events.lock()
        stored = await uow.events.append(
            PeriodClosed(**command.model_dump()), actor=command.closed_by, catalogue_id=command.catalogue_id
        )
        await uow.workflow.close_period(
            command.catalogue_id, command.catalogue_version, command.period, stored.sequence
        )
        await uow.commit()
    return stored


async def reopen_unit(command: ReopenUnit, uow: UnitOfWork, catalogues: CatalogueRegistry) -> StoredEvent:
    scope = (command.catalogue_id, command.catalogue_version, command.period)
    async with uow:
        await _catalogue(uow, catalogues, command.catalogue_id, command.catalogue_version)
    async with uow.writing():
        await uow.events.lock()
        if not await uow.workflow.is_closed(*scope):
            raise Conflict("the period is not closed", [FieldError("period", "not closed")])
        stored = await uow.events.append(
            UnitReopened(**command.model_dump()),
            actor=command.reopened_by,
            catalogue_id=command.catalogue_id,
            unit_id=command.unit_id,
        )
        await uow.workflow.reopen_unit(*scope, command.unit_id, stored.sequence)
        await uow.commit()
    return stored


async def report_context(command: ReportContext, uow: UnitOfWork, catalogues: CatalogueRegistry) -> StoredEvent:
    """General information ("Thông tin chung") for a unit and period, checked against the catalogue's fields."""
    async with uow:
        catalogue = await _catalogue(uow, catalogues, command.catalogue_id, command.catalogue_version)
    fields = {field.code: field for field in catalogue.context_fields}
    errors: list[FieldError] = []
    values: dict[str, str | bool] = {}
    for code, value in command.values.items():
        field = fields.get(code)
        if field is None:
            errors.append(FieldError(f"values.{code}", f"{catalogue.id} has no general-information field {code}"))
        elif field.type == "boolean":
            if isinstance(value, bool):
                values[code] = value
            else:
                errors.append(FieldError(f"values.{code}", "must be true or false"))
        elif field.type in ("text", "category"):
            values[code] = str(value)
        elif isinstance(value, bool) or not _is_number(value):
            errors.append(FieldError(f"values.{code}", "must be a number"))
        else:
            values[code] = str(Decimal(str(value)))
    if errors or not values:
        errors = errors or [FieldError("values", "at least one field")]
        raise InvalidMeasurement("; ".join(f"{e.field}: {e.message}" for e in errors), errors)
    event = ContextReported(**command.model_dump(exclude={"values"}), values=values)
    return await _append(uow, event, command.submitted_by)


def _is_number(value: Any) -> bool:
    try:
        return Decimal(str(value)).is_finite()
    except ArithmeticError:
        return False


async def publish_result(command: PublishResult, uow: UnitOfWork, catalogues: CatalogueRegistry) -> StoredEvent:
    """Freeze the complete ranking as an event; a restatement names the publication it replaces."""
    scope = (command.catalogue_id, command.catalogue_version, command.period)
    async with uow:
        catalogue = await _catalogue(uow, catalogues, command.catalogue_id, command.catalogue_version)
    async with uow.writing():
        await uow.events.lock()  # nothing can be appended between reading the scores and publishing them
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
        ranking = await _ranking(uow, catalogue, command)
        event = ResultPublished(
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
            published_by=command.published_by,
        )
        stored = await uow.events.append(event, actor=command.published_by, catalogue_id=command.catalogue_id)
        await uow.commit()
    return stored


async def _ranking(uow: UnitOfWork, catalogue: Catalogue, command: PublishResult) -> tuple[RankedUnit, ...]:
    version, period, stage = command.catalogue_version, command.period, command.stage
    current = collect_inputs(catalogue, await uow.workflow.measurements(catalogue.id, version, period, stage))
    previous = collect_inputs(catalogue, await uow.workflow.measurements(catalogue.id, version, period - 1, stage))
    scores = score_period(catalogue, current, previous)
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
