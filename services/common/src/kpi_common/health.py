"""/healthz (the process answers) and /readyz (its database and NATS answer)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

ReadinessCheck = Callable[[], Awaitable[None]]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str  # "ready" or "not ready"
    checks: dict[str, str]  # each dependency: "ok" or "failing: <error>"


def health_router(checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health)
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready"}})
    async def readyz() -> JSONResponse:
        """Every dependency (database, NATS) answers."""
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await check()
                results[name] = "ok"
            except Exception as error:  # a readiness probe reports, it does not raise
                results[name] = f"failing: {type(error).__name__}"
        ready = all(value == "ok" for value in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results}, status_code=200 if ready else 503
        )

    return router
