"""Import a measurement set: every row checked as `POST /v1/measurements` checks one, then, under one
lock of the counter, compared with the log and appended in one transaction (one batch of events,
one outbox batch; each measurement its own event with its own sequence, hash and chain link).
A dry run reads the log without the lock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from kpi_common.logs import request_id
from kpi_common.problems import LONGEST_ERROR_TEXT, MOST_ERRORS, cut
from kpi_core.events import DomainEvent, RequestAttributes, idempotency_key_sha256
from kpi_core.measurement_sets import (
    CheckedRow,
    ImportSet,
    RowError,
    SetDecision,
    SetSummary,
    check_rows,
    decide_set,
)
from kpi_core.measurements import FieldError
from kpi_core.set_proof import recorded_summary, summary_sha256
from kpi_ingest.adapters.set_store import SetRecord
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.errors import IdempotencyConflict, IngestError
from kpi_ingest.service_layer.handlers import assessed_catalogue
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_ingest.service_layer.units import RegistryCache


class SetRefused(IngestError):
    """An atomic set with a refused row: nothing stored; the summary names every refused row."""

    status, title = 422, "Invalid measurement"  # the problem type of a refused measurement, with the summary beside

    def __init__(self, detail: str, summary: dict[str, Any]) -> None:
        super().__init__(
            detail,
            [FieldError(f"rows.{error['row']}.{error['field']}", error["message"]) for error in summary["errors"]],
        )
        self.summary = summary


@dataclass(frozen=True)
class SetImported:
    """What a set did (or, in a dry run, would do), as the import summary the API answers."""

    summary: dict[str, Any]
    replayed: bool = False

    @property
    def stored(self) -> bool:
        return bool(self.summary["stored"])


async def import_measurement_set(
    command: ImportSet, uow: UnitOfWork, catalogues: CatalogueRegistry, units: RegistryCache
) -> SetImported:
    """Import a set, or (a dry run) say what it would do without the append lock and storing nothing.

    Idempotency: every set that stored something is recorded under its Idempotency-Key, so the same
    key with other content is a 409. A set that stored nothing (every row unchanged) keeps no record:
    repeated, it is compared with the log again. A refused set (422) is not recorded either:
    correcting it and sending it again under the same key is what a client does.
    """
    actor, key = command.submitted_by, command.idempotency_key
    async with uow:
        catalogue, registry = await assessed_catalogue(
            uow, catalogues, units, command.scope.catalogue_id, command.scope.catalogue_version
        )
        earlier = await uow.sets.by_idempotency_key(actor, key)
    if earlier is not None and not command.dry_run:
        return replay_set(earlier, command.fingerprint())
    # pure and before the lock; in a worker thread, so a large set does not hold up the event loop
    checked, refused = await asyncio.to_thread(check_rows, command.rows, command.scope, catalogue, registry, actor)
    if command.dry_run:
        return await _dry_run(command, uow, checked, refused)
    try:
        return await _import(command, uow, checked, refused)
    except IntegrityError:
        # a concurrent request with the same key committed first: answer as its replay
        async with uow:
            earlier = await uow.sets.by_idempotency_key(actor, key)
        if earlier is None:
            raise
        return replay_set(earlier, command.fingerprint())


async def _dry_run(
    command: ImportSet, uow: UnitOfWork, checked: list[CheckedRow], refused: list[RowError]
) -> SetImported:
    """What the set would do, read from the log without the append lock (a dry run stores nothing)."""
    named_units = {row.event.unit_id for row in checked}
    async with uow:
        latest = await uow.sets.latest_self_assessments(command.scope, named_units)
        closed = await uow.sets.closed_for(command.scope, named_units)
    decision = decide_set(checked, refused, latest, closed, command.mode)
    return SetImported(_summary(command, decision, None, stored=False))


async def _import(
    command: ImportSet, uow: UnitOfWork, checked: list[CheckedRow], refused: list[RowError]
) -> SetImported:
    """Under the append lock: compare with the log, append what changes something, record the outcome."""
    actor, key, fingerprint = command.submitted_by, command.idempotency_key, command.fingerprint()
    named_units = {row.event.unit_id for row in checked}
    async with uow.writing():
        await uow.events.lock()
        earlier = await uow.sets.by_idempotency_key(actor, key)
        if earlier is not None:
            return replay_set(earlier, fingerprint)
        latest = await uow.sets.latest_self_assessments(command.scope, named_units)
        closed = await uow.sets.closed_for(command.scope, named_units)
        decision = decide_set(checked, refused, latest, closed, command.mode)
        if decision.refused and command.mode == "atomic":
            raise SetRefused(_refusal(decision), _summary(command, decision, None, stored=False))
        summary = await _append(command, uow, decision)
        await uow.commit()
        return SetImported(summary)


async def _append(command: ImportSet, uow: UnitOfWork, decision: SetDecision) -> dict[str, Any]:
    """Append the accepted events and record the set under its key. A set that changes nothing
    stores nothing and keeps no record (see `kpi_core.set_proof`)."""
    accepted = [decided.event for decided in decision.accepted]
    if not accepted:
        return _summary(command, decision, None, stored=False)
    summary = _summary(command, decision, str(uuid.uuid4()), stored=True)
    actor, key, fingerprint = command.submitted_by, command.idempotency_key, command.fingerprint()
    return await append_set(uow, accepted, summary, actor=actor, key=key, fingerprint=fingerprint)


async def append_set(
    uow: UnitOfWork, events: Sequence[DomainEvent], summary: dict[str, Any], *, actor: str, key: str, fingerprint: str
) -> dict[str, Any]:
    """In the open transaction: a set's events appended, each carrying the hashes of the set's key,
    request and recorded summary, and the set recorded under its key. Returns the summary with the
    sequences given."""
    recorded = recorded_summary(summary)
    request = RequestAttributes(request_id.get(), idempotency_key_sha256(key), fingerprint, summary_sha256(recorded))
    sequences = await uow.events.append_many(events, request)
    summary = summary | {"first_sequence": sequences[0], "last_sequence": sequences[-1]}
    await uow.sets.record(
        SetRecord(summary["set_id"], fingerprint, summary),
        actor=actor,
        idempotency_key=key,
        first_sequence=sequences[0],
        last_sequence=sequences[-1],
    )
    return summary


def replay_set(earlier: SetRecord, fingerprint: str) -> SetImported:
    """What a set stored under this Idempotency-Key, if the request is the same (else 409)."""
    if earlier.request_sha256 != fingerprint:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used for a different measurement set",
            [FieldError("Idempotency-Key", "reused")],
        )
    return SetImported(earlier.summary, replayed=True)


def _refusal(decision: SetDecision) -> str:
    rows = sorted({error.row for error in decision.refused})
    shown = ", ".join(str(row) for row in rows[:20]) + (" …" if len(rows) > 20 else "")
    return (
        f"{len(rows)} row(s) refused ({shown}); nothing was stored: correct them, "
        "or send mode=partial to store the valid rows"
    )


def _summary(command: ImportSet, decision: SetDecision, set_id: str | None, *, stored: bool) -> dict[str, Any]:
    counts = SetSummary.of(decision, stored=stored)
    errors = [
        {
            "row": error.row,
            "field": cut(error.field, LONGEST_ERROR_TEXT),
            "message": cut(error.message, LONGEST_ERROR_TEXT),
        }
        for error in decision.refused[:MOST_ERRORS]
    ]
    scope = command.scope
    return {
        "set_id": set_id,
        "catalogue_id": scope.catalogue_id,
        "catalogue_version": scope.catalogue_version,
        "period": scope.period,
        "mode": command.mode,
        "dry_run": command.dry_run,
        "stored": stored,
        "rows": counts.imported + counts.replaced + counts.unchanged + counts.refused,
        "imported": counts.imported,
        "replaced": counts.replaced,
        "unchanged": counts.unchanged,
        "refused": counts.refused,
        "errors": errors,
        "errors_total": len(decision.refused),
        "first_sequence": None,
        "last_sequence": None,
    }
