"""/healthz (the process answers) and /readyz (it can do its job).

Readiness means "can do its job": what a service needs is required (ingest: its database; a
projection: its database, NATS and a running consumer); what it can do without is reported but
does not make it unready (ingest keeps accepting writes while NATS is down: its outbox buffers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

ReadinessCheck = Callable[[], Awaitable[None]]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str  # "ready", "degraded" (ready, something optional failing) or "not ready"
    checks: dict[str, str]  # each dependency: "ok" or "failing: <error>"


def health_router(
    checks: Mapping[str, ReadinessCheck], degraded_without: Mapping[str, ReadinessCheck] | None = None
) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health)
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready"}})
    async def readyz() -> JSONResponse:
        """Every dependency (database, NATS) answers."""
        results = {name: await _probe(check) for name, check in checks.items()}
        optional = {name: await _probe(check) for name, check in (degraded_without or {}).items()}
        ready = all(value == "ok" for value in results.values())
        degraded = ready and any(value != "ok" for value in optional.values())
        status = "degraded" if degraded else "ready" if ready else "not ready"
        return JSONResponse({"status": status, "checks": results | optional}, status_code=200 if ready else 503)

    return router


async def _probe(check: ReadinessCheck) -> str:
    try:
        await check()
        return "ok"
    except Exception as error:  # a readiness probe reports, it does not raise
        return f"failing: {type(error).__name__}: {error}"[:200]
