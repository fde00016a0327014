"""API keys over HTTP: grant (the secret is returned once), list (never a secret), rotate, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from kpi_common.access import AdminKey, AuditorKey
from kpi_common.auth import KEY_ID_PATTERN
from kpi_common.paging import AfterQuery, LimitQuery, link_next, page_of
from kpi_core.commands import GrantKey, RevokeKey, RotateKey
from kpi_core.events import ApiKeyGranted, Role
from kpi_ingest.entrypoints.api.contracts import KeyEntry, KeyGranted, KeyRevoked
from kpi_ingest.entrypoints.api.deps import IngestDep
from kpi_ingest.service_layer import keys

router = APIRouter(prefix="/v1/keys", tags=["api keys"])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=KEY_ID_PATTERN, max_length=100)
    roles: list[Role] = Field(min_length=1, max_length=5)
    units: list[str] = Field(default_factory=list, max_length=1000, description='unit ids, or "*" for every unit')
    peer_groups: list[str] = Field(default=["*"], max_length=100, description='where the key acts; "*" for all')
    expires_at: datetime | None = Field(default=None, description="ISO 8601 with a time zone")


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=2000)


def _granted(event: ApiKeyGranted, secret: str) -> dict[str, Any]:
    return {
        "id": event.key_id,
        "secret": secret,
        "roles": list(event.roles),
        "units": list(event.units),
        "peer_groups": list(event.peer_groups),
        "expires_at": event.expires_at.isoformat() if event.expires_at else None,
        "granted_by": event.granted_by,
    }


@router.post("", status_code=201, response_model=KeyGranted)
async def grant(key: AdminKey, body: KeyIn, ingest: IngestDep) -> dict[str, Any]:
    """Grant a key: the secret is in this answer only (only its SHA-256 is stored, as an event)."""
    async with ingest.uow() as uow:
        registry = await ingest.units.get(uow)
    command = GrantKey(
        key_id=body.id,
        roles=tuple(body.roles),
        units=tuple(body.units),
        peer_groups=tuple(body.peer_groups),
        expires_at=body.expires_at,
        granted_by=key.id,
    )
    event, secret = await keys.grant_key(command, ingest.uow(), registry)
    ingest.keys.expire()
    return _granted(event, secret)


@router.get("", response_model=list[KeyEntry])
async def list_keys(
    key: AuditorKey,
    ingest: IngestDep,
    request: Request,
    response: Response,
    after: AfterQuery = 0,
    limit: LimitQuery = 100,
) -> list[dict[str, Any]]:
    """Every key ever granted, with its roles, scope, who granted and revoked it and when (no secrets),
    in the order granted; paged like every list (`after` = a `granted_sequence`, `limit`, `Link`)."""
    async with ingest.uow() as uow:
        rows = await keys.KEYS.rows(uow.session)
    found, more = page_of(rows, after, limit, lambda row: int(str(row["granted_sequence"])))
    if more:
        link_next(request, response, int(str(found[-1]["granted_sequence"])))
    return found


@router.post("/{key_id}/rotate", status_code=201, response_model=KeyGranted)
async def rotate(key: AdminKey, key_id: str, ingest: IngestDep) -> dict[str, Any]:
    """A new secret for the key (returned once); the old secret stops working everywhere."""
    event, secret = await keys.rotate_key(RotateKey(key_id=key_id, rotated_by=key.id), ingest.uow())
    ingest.keys.expire()
    return _granted(event, secret)


@router.post("/{key_id}/revoke", response_model=KeyRevoked)
async def revoke(key: AdminKey, key_id: str, body: RevokeIn, ingest: IngestDep) -> dict[str, Any]:
    """Revoke a key: every service refuses it within about a second."""
    event = await keys.revoke_key(RevokeKey(key_id=key_id, reason=body.reason, revoked_by=key.id), ingest.uow())
    ingest.keys.expire()
    return {"id": event.key_id, "revoked_by": event.revoked_by, "reason": event.reason}
