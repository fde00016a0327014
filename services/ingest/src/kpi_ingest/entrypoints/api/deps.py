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


def require_unit(key: ApiKey, unit_id: str) -> None:
    """A reporter key writes only for the units it is bound to."""
    require_role(key, "reporter")
    if not key.may_report_for(unit_id):
        raise Problem(
            403,
            "Forbidden",
            f"key {key.id} may not report for unit {unit_id}",
            [{"field": "unit_id", "message": "not bound to this key"}],
        )


def IdempotencyKey(idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> str:
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
