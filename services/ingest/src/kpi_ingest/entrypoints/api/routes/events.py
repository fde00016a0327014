"""GET /v1/events: the event log in order, as CloudEvents, for consumers without NATS and for auditors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from kpi_ingest.entrypoints.api.deps import ApiKeyDep, IngestDep, require_role

router = APIRouter(prefix="/v1", tags=["events"])


@router.get("/events")
async def read_events(
    ingest: IngestDep,
    key: ApiKeyDep,
    after: Annotated[int, Query(ge=0, description="Return events with a sequence above this cursor")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type: Annotated[str | None, Query(description="e.g. vn.kpi.measurement.recorded.v1")] = None,
    catalogue: Annotated[str | None, Query()] = None,
    unit: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Events after a sequence, in order, with the cursor to resume from (auditor or admin key)."""
    require_role(key, "auditor", "admin")
    async with ingest.uow() as uow:
        head = await uow.events.head()
        found = await uow.events.read_after(after, limit, event_type=type, catalogue_id=catalogue, unit_id=unit)
    # Nothing can commit below the head later (appends commit in sequence order), so when a filtered
    # page is short the cursor may jump to the head without passing over a future match.
    last = found[-1].sequence if found else after
    next_after = last if len(found) == limit else max(head, last, after)
    return {"events": [stored.envelope.model_dump(mode="json") for stored in found], "next_after": next_after}
