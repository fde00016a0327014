"""The unit registry: peer groups and their units (public), registration of a new version by an admin."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from kpi_common.access import AdminKey
from kpi_common.problems import Problem
from kpi_core.commands import RegisterPeerGroup
from kpi_core.units import PeerGroup, reference_date
from kpi_ingest.entrypoints.api.contracts import PeerGroupDocument, Registered
from kpi_ingest.entrypoints.api.deps import IngestDep
from kpi_ingest.service_layer.units import register_peer_group

router = APIRouter(prefix="/v1/peer-groups", tags=["unit registry"])


class PeerGroupSummary(BaseModel):
    id: str
    version: str
    title_vi: str
    title_en: str | None
    units: int


class PeerGroupIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    version: str


async def _group(ingest: IngestDep, peer_group_id: str) -> PeerGroup:
    async with ingest.uow() as uow:
        group = (await ingest.units.get(uow)).group(peer_group_id)
    if group is None:
        raise Problem(404, "Not found", f"no peer group {peer_group_id} is registered")
    return group


@router.get("", response_model=list[PeerGroupSummary])
async def list_peer_groups(ingest: IngestDep) -> list[PeerGroupSummary]:
    """Every registered peer group, in its version in force."""
    async with ingest.uow() as uow:
        registry = await ingest.units.get(uow)
    return [
        PeerGroupSummary(
            id=group.id, version=group.version, title_vi=group.title_vi, title_en=group.title_en, units=len(group.units)
        )
        for group in sorted(registry.groups.values(), key=lambda group: group.id)
    ]


@router.get("/{peer_group_id}", response_model=PeerGroupDocument, response_model_exclude_unset=True)
async def get_peer_group(
    peer_group_id: str,
    ingest: IngestDep,
    period: Annotated[int | None, Query(ge=2000, le=2100, description="Only the units valid in this year")] = None,
    on: Annotated[date | None, Query(description="Only the units valid on this day")] = None,
) -> dict[str, Any]:
    """A peer group's units with their names, codes, validity and predecessors (all of them, or of one period)."""
    group = await _group(ingest, peer_group_id)
    document = group.document()
    day = on or (reference_date(period) if period is not None else None)
    if day is not None:
        document["units"] = [unit.model_dump(mode="json", exclude_none=True) for unit in group.members(day)]
        document["valid_on"] = day.isoformat()
    return document


@router.post("", status_code=201, response_model=Registered)
async def register(key: AdminKey, body: PeerGroupIn, ingest: IngestDep) -> dict[str, Any]:
    """Register a new version of a peer group's unit list (admin key); the latest version is in force."""
    command = RegisterPeerGroup(document=body.model_dump(mode="json"), registered_by=key.id)
    stored = await register_peer_group(command, ingest.uow())
    assert stored is not None
    ingest.units.expire()
    return {"id": body.id, "version": body.version, "event_id": stored.envelope.id, "sequence": stored.sequence}
