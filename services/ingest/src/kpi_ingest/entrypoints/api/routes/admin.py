"""Operating the log: what the relay withheld from the stream (the events no retry could publish)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from kpi_common.access import AdminKey
from kpi_common.paging import AfterQuery, LimitQuery, link_next
from kpi_ingest.entrypoints.api.contracts import WithheldEvent
from kpi_ingest.entrypoints.api.deps import IngestDep

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/withheld", response_model=list[WithheldEvent])
async def withheld(
    key: AdminKey,
    ingest: IngestDep,
    request: Request,
    response: Response,
    after: AfterQuery = 0,
    limit: LimitQuery = 100,
) -> list[dict[str, Any]]:
    """The events the relay withheld from the stream, each replaced there by a placeholder (admin key), in
    sequence order; paged like every list (`after` = a `sequence`, `limit`, `Link`)."""
    async with ingest.uow() as uow:
        found = await uow.events.withheld(after, limit + 1)
    if len(found) > limit:
        found = found[:limit]
        link_next(request, response, int(str(found[-1]["sequence"])))
    return found
