"""Import a measurement set: every row checked as `POST /v1/measurements` checks one, then, under one
lock of the counter, compared with the log and appended in one transaction (one batch of events,
one outbox batch; each measurement its own event with its own sequence, hash and chain link)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from kpi_common.problems import LONGEST_ERROR_TEXT, MOST_ERRORS, cut
from kpi_core.measurement_sets import ImportSet, SetDecision, SetSummary, check_rows, decide_set
from kpi_core.measurements import FieldError
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
    scope, actor, key = command.scope, command.submitted_by, command.idempotency_key
    fingerprint = command.fingerprint()
    async with uow:
        catalogue, registry = await assessed_catalogue(
            uow, catalogues, units, scope.catalogue_id, scope.catalogue_version
        )
        earlier = await uow.sets.by_idempotency_key(actor, key)
    if earlier is not None and not command.dry_run:
        return replay_set(earlier, fingerprint)
    checked, refused = check_rows(command.rows, scope, catalogue, registry, actor)  # pure, before the lock
    named_units = {row.event.unit_id for row in checked}
    try:
        async with uow.writing():
            await uow.events.lock()
            earlier = await uow.sets.by_idempotency_key(actor, key)
            if earlier is not None and not command.dry_run:
                return replay_set(earlier, fingerprint)
            latest = await uow.sets.latest_self_assessments(scope, named_units)
            closed = await uow.sets.closed_for(scope, named_units)
            decision = decide_set(checked, refused, latest, closed, command.mode)
            accepted = [decided.event for decided in decision.accepted]
            if command.dry_run or not accepted:
                summary = _summary(command, decision, None, stored=False)
                if decision.refused and command.mode == "atomic" and not command.dry_run:
                    raise SetRefused(_refusal(decision), summary)
                return SetImported(summary)
            sequences = await uow.events.append_many(accepted)
            set_id = str(uuid.uuid4())
            summary = _summary(command, decision, set_id, stored=True)
            summary |= {"first_sequence": sequences[0], "last_sequence": sequences[-1]}
            await uow.sets.record(
                SetRecord(set_id, fingerprint, summary),
                actor=actor,
                idempotency_key=key,
                first_sequence=sequences[0],
                last_sequence=sequences[-1],
            )
            await uow.commit()
            return SetImported(summary)
    except IntegrityError:
        # a concurrent request with the same key committed first: answer as its replay
        async with uow:
            earlier = await uow.sets.by_idempotency_key(actor, key)
        if earlier is None:
            raise
        return replay_set(earlier, fingerprint)


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
