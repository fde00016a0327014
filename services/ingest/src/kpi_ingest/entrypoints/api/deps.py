"""Request dependencies: the composition root, the write scope of a key, the Idempotency-Key."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends, Header, Request

from kpi_common.access import require_scope
from kpi_common.auth import ApiKey
from kpi_common.problems import Problem
from kpi_ingest.bootstrap import Ingest


async def get_ingest(request: Request) -> Ingest:
    return request.app.state.ingest  # type: ignore[no-any-return]


IngestDep = Annotated[Ingest, Depends(get_ingest)]


class ScopedRequest(Protocol):
    catalogue_id: str
    catalogue_version: str


async def require_write_scope(ingest: Ingest, key: ApiKey, body: ScopedRequest, *, role_used: str) -> None:
    """The key acts in the catalogue's peer group and, where it names units, for the request's unit
    (an unknown catalogue is left to the handler, which answers 422 naming it)."""
    peer_group = await ingest.peer_group_of(body.catalogue_id, body.catalogue_version)
    if peer_group is not None:
        require_scope(key, peer_group, getattr(body, "unit_id", None), role_used=role_used)


async def IdempotencyKey(idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> str:
    """The Idempotency-Key header every recorded submission needs."""
    if not idempotency_key:
        raise Problem(
            400,
            "Idempotency-Key required",
            "send an Idempotency-Key header",
            [{"field": "Idempotency-Key", "message": "required"}],
        )
    return idempotency_key


IdempotencyKeyDep = Annotated[str, Depends(IdempotencyKey)]
