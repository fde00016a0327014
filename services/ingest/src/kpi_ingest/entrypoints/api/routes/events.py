"""GET /v1/events: the event log in order, as CloudEvents, for consumers without NATS and for auditors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from kpi_common.access import AuditorKey
from kpi_common.as_of import LARGEST_SEQUENCE
from kpi_common.http_cache import conditional
from kpi_common.paging import AfterQuery, LimitQuery, link_next
from kpi_common.problems import Problem
from kpi_ingest.adapters.event_store import EventTampered
from kpi_ingest.bootstrap import Ingest
from kpi_ingest.entrypoints.api.contracts import CloudEvent, EventPage
from kpi_ingest.entrypoints.api.deps import IngestDep

log = logging.getLogger("kpi_ledger.ingest")
router = APIRouter(prefix="/v1", tags=["events"])


@asynccontextmanager
async def refusing_tampered(ingest: Ingest) -> AsyncIterator[None]:
    """An event that fails its hash is not served; ingest says so, and is no longer ready."""
    try:
        yield
    except EventTampered as tampered:
        ingest.tampered_at = min(ingest.tampered_at or tampered.sequence, tampered.sequence)
        log.error("the stored event %s does not match its hash: the log was edited", tampered.sequence)
        raise Problem(
            503,
            "Log integrity failure",
            f"the stored event {tampered.sequence} does not match its hash: the log was edited after it was "
            "recorded; run `kpi-ledger verify`",
        ) from None


TAMPERED: dict[int | str, dict[str, Any]] = {
    503: {"description": "A stored event does not match its hash: the log was edited"}
}


@router.get("/events", response_model=EventPage, response_model_exclude_none=True, responses=TAMPERED)
async def read_events(
    key: AuditorKey,
    ingest: IngestDep,
    request: Request,
    response: Response,
    after: AfterQuery = 0,
    limit: LimitQuery = 100,
    type: Annotated[str | None, Query(description="e.g. vn.kpi.measurement.recorded.v1")] = None,
    catalogue: Annotated[str | None, Query()] = None,
    unit: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Events after a sequence, in order, with the cursor to resume from (auditor or admin key);
    paged like every list (`after`, `limit`, `Link: rel="next"`), the cursor also in `next_after`."""
    async with ingest.uow() as uow, refusing_tampered(ingest):
        found, next_after = await uow.events.page(after, limit, event_type=type, catalogue_id=catalogue, unit_id=unit)
    if len(found) == limit:
        link_next(request, response, next_after)
    return {"events": [stored.envelope.shown() for stored in found], "next_after": next_after}


@router.get("/events/{sequence}", response_model=CloudEvent, responses=TAMPERED)
async def read_event(
    key: AuditorKey,
    sequence: Annotated[int, Path(ge=1, le=LARGEST_SEQUENCE, description="The event's place in the log")],
    ingest: IngestDep,
    request: Request,
) -> Response:
    """One event as stored (auditor or admin key); immutable: ETag, If-None-Match."""
    async with ingest.uow() as uow, refusing_tampered(ingest):
        found, _ = await uow.events.page(sequence - 1, 1)
    if not found or found[0].sequence != sequence:
        raise Problem(404, "Not found", f"no event {sequence} in the log")
    return conditional(request, found[0].envelope.shown())
