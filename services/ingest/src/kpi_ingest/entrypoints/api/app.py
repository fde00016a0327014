"""The ingest app factory; its lifespan builds and closes every connection."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from kpi_common.health import health_router
from kpi_common.http_security import install_http_security
from kpi_common.observability import install_observability
from kpi_common.openapi import install_openapi
from kpi_common.outbox_metrics import outbox_probe
from kpi_common.problems import install_problem_handlers, problem_response
from kpi_common.streams import EVENTS
from kpi_ingest.adapters.event_store import EventTampered
from kpi_ingest.adapters.orm import events as events_table
from kpi_ingest.adapters.orm import outbox, withheld_events
from kpi_ingest.bootstrap import Ingest, bootstrap
from kpi_ingest.config import Settings
from kpi_ingest.entrypoints.api.routes import (
    admin,
    audit,
    catalogues,
    events,
    keys,
    measurement_sets,
    measurements,
    schemas,
    templates,
    units,
    verification_sets,
    workflow,
)
from kpi_ingest.entrypoints.api.set_bodies import install_set_body_guard, set_refused_response
from kpi_ingest.service_layer.errors import IngestError
from kpi_ingest.service_layer.measurement_sets import SetRefused

log = logging.getLogger("kpi_ledger.ingest")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ingest = await bootstrap(settings)
        app.state.ingest = ingest
        app.state.keys, app.state.auth_failures = ingest.keys, ingest.auth_failures
        app.state.peer_group_of = ingest.peer_group_of
        withheld = select(func.count()).select_from(withheld_events)
        probe = outbox_probe(ingest.sessions, outbox, events_table, ingest.relay, EVENTS.name, withheld)
        app.state.metrics.probe(probe)
        try:
            yield
        finally:
            await ingest.close()

    app = FastAPI(title="kpi-ledger ingest", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_problem_handlers(app)
    install_openapi(app)
    install_http_security(app, max_body_bytes=settings.max_body_bytes, cors_origins=settings.cors_origins)
    install_set_body_guard(app, max_body_bytes=settings.max_body_bytes, set_max_bytes=settings.set_max_bytes)
    install_observability(app, "ingest")

    @app.exception_handler(IngestError)
    async def _ingest_error(request: Request, exc: IngestError) -> JSONResponse:
        errors = [{"field": error.field, "message": error.message} for error in exc.errors]
        return problem_response(exc.status, exc.title, exc.detail, request.url.path, errors)

    @app.exception_handler(SetRefused)
    async def _set_refused(request: Request, exc: SetRefused) -> JSONResponse:
        return set_refused_response(exc, request.url.path)

    def ingest_of() -> Ingest:
        return app.state.ingest  # type: ignore[no-any-return]

    @app.exception_handler(EventTampered)
    async def _tampered(request: Request, exc: EventTampered) -> JSONResponse:
        """A write that would answer an edited event (a retry found by an edited key) is refused as a read is."""
        ingest = ingest_of()
        ingest.tampered_at = min(ingest.tampered_at or exc.sequence, exc.sequence)
        log.error("the stored event %s does not match its hash: the log was edited", exc.sequence)
        detail = f"{exc}: the log was edited after it was recorded; run `kpi-ledger verify`"
        return problem_response(503, "Log integrity failure", detail, request.url.path)

    async def database() -> None:
        await ingest_of().check_database()

    async def nats() -> None:
        await ingest_of().check_nats()

    async def integrity() -> None:
        await ingest_of().check_integrity()

    checks = {"database": database, "log integrity": integrity}
    app.include_router(health_router(checks, degraded_without={"nats": nats}))
    app.include_router(measurements.router)
    app.include_router(measurement_sets.router)
    app.include_router(templates.router)
    app.include_router(verification_sets.router)
    app.include_router(catalogues.router)
    app.include_router(schemas.router)
    app.include_router(events.router)
    app.include_router(audit.router)
    app.include_router(workflow.router)
    app.include_router(units.router)
    app.include_router(keys.router)
    app.include_router(admin.router)
    return app
