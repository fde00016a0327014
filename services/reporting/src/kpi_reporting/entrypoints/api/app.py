"""The reporting app factory: rankings and scorecards over HTTP; the consumer runs in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from kpi_common.health import health_router
from kpi_common.http_security import install_http_security
from kpi_common.observability import install_observability
from kpi_common.openapi import install_openapi
from kpi_common.problems import install_problem_handlers
from kpi_common.projection_metrics import projection_probe
from kpi_reporting.adapters.orm import dead_letters
from kpi_reporting.bootstrap import build
from kpi_reporting.config import Settings
from kpi_reporting.dashboard import routes as dashboard
from kpi_reporting.dashboard.options import DashboardOptions
from kpi_reporting.entrypoints.api.routes import exports, reports


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reporting = app.state.reporting = build(settings)
        app.state.keys, app.state.auth_failures = reporting.keys, reporting.auth_failures
        app.state.peer_group_of = reporting.catalogues.peer_group_lookup(reporting.service.sessions)
        app.state.metrics.probe(projection_probe(reporting.service, dead_letters))
        if settings.run_consumer:
            app.state.reporting.service.start()
        try:
            yield
        finally:
            await app.state.reporting.service.close()

    app = FastAPI(title="kpi-ledger reporting", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.dashboard = DashboardOptions(
        settings.dashboard_public_origin,
        settings.dashboard_trust_forwarded,
        settings.dashboard_ingest_url,
        settings.dashboard_scoring_url,
    )
    install_problem_handlers(app)
    install_openapi(app)
    install_http_security(app, max_body_bytes=settings.max_body_bytes, cors_origins=settings.cors_origins)
    install_observability(app, "reporting")

    async def database() -> None:
        await app.state.reporting.service.check_database()

    async def nats() -> None:
        await app.state.reporting.service.check_nats()

    checks = {"database": database, "nats": nats} if settings.run_consumer else {"database": database}
    app.include_router(health_router(checks))
    app.include_router(reports.router)
    app.include_router(exports.router)
    app.include_router(dashboard.router)
    return app
