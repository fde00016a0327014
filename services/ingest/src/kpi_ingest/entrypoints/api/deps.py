"""Request dependencies: the composition root and the caller's API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from kpi_common.auth import ApiKey
from kpi_common.problems import Problem
from kpi_ingest.bootstrap import Ingest


def get_ingest(request: Request) -> Ingest:
    return request.app.state.ingest  # type: ignore[no-any-return]


IngestDep = Annotated[Ingest, Depends(get_ingest)]


def get_api_key(
    ingest: IngestDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> ApiKey:
    secret = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        secret = authorization[7:].strip()
    key = ingest.keys.authenticate(secret)
    if key is None:
        raise Problem(401, "Unauthorized", "an API key is required (Authorization: Bearer <key> or X-API-Key)")
    return key


ApiKeyDep = Annotated[ApiKey, Depends(get_api_key)]


def require_role(key: ApiKey, *roles: str) -> None:
    if not set(roles) & set(key.roles):
        raise Problem(403, "Forbidden", f"key {key.id} lacks the role: {' or '.join(roles)}")
