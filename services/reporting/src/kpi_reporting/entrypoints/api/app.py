"""The reporting app factory: rankings and scorecards over HTTP; the consumer runs in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request

from kpi_common.health import health_router
from kpi_common.problems import install_problem_handlers
from kpi_common.scope import ScopeDep
from kpi_reporting import views
from kpi_reporting.bootstrap import Reporting, build
from kpi_reporting.config import Settings


def get_reporting(request: Request) -> Reporting:
    return request.app.state.reporting  # type: ignore[no-any-return]


ReportingDep = Annotated[Reporting, Depends(get_reporting)]


router = APIRouter(prefix="/v1", tags=["reports"])


AsOfQuery = Annotated[
    str | None,
    Query(description="A past moment: an event sequence (e.g. 1200) or a recorded time (e.g. 2025-03-31T17:00:00Z)"),
]


async def _result(reporting: Reporting, scope: dict[str, Any], as_of: str | None) -> views.PeriodResult:
    moment = views.AsOf.parse(as_of)
    async with reporting.service.sessions() as session:
        return await views.period_result(
            session, reporting.catalogues, reporting.service.tracking, reporting.cache, scope, moment
        )


@router.get("/rankings")
async def get_rankings(scope: ScopeDep, reporting: ReportingDep, as_of: AsOfQuery = None) -> dict[str, Any]:
    """Units ranked by total (ties share a rank), with per-pillar points; `as_of` answers for a past moment."""
    return views.rankings_view(await _result(reporting, scope, as_of), scope)


@router.get("/units/{unit}/scorecard")
async def get_scorecard(unit: str, scope: ScopeDep, reporting: ReportingDep, as_of: AsOfQuery = None) -> dict[str, Any]:
    """One unit's scorecard: every pillar and indicator with inputs, points, max and status; `as_of` as for rankings."""
    return views.scorecard_view(await _result(reporting, scope, as_of), scope, unit)


@router.get("/units/{unit}/history")
async def get_history(
    unit: str,
    scope: ScopeDep,
    reporting: ReportingDep,
    indicator: Annotated[str | None, Query()] = None,
    as_of: AsOfQuery = None,
) -> list[dict[str, Any]]:
    """Every measurement of a unit for a catalogue version and period, in order, with who and when."""
    moment = views.AsOf.parse(as_of)
    async with reporting.service.sessions() as session:
        return await views.history_view(session, scope, unit, indicator, moment)


@router.get("/diff")
async def get_diff(
    scope: ScopeDep,
    reporting: ReportingDep,
    from_: Annotated[str, Query(alias="from", description="The earlier moment: a sequence or a time")],
    to: Annotated[str | None, Query(description="The later moment (default: now)")] = None,
) -> dict[str, Any]:
    """What changed for a catalogue version and period between two moments: ranks, scores, and the events."""
    before = await _result(reporting, scope, from_)
    after = await _result(reporting, scope, to)
    async with reporting.service.sessions() as session:
        events = await views.history_view(session, scope, None, None, views.AsOf.parse(to))
    return views.diff_view(before, after, [event for event in events if event["stage"] == scope["stage"]])


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.reporting = build(settings)
        if settings.run_consumer:
            app.state.reporting.service.start()
        try:
            yield
        finally:
            await app.state.reporting.service.close()

    app = FastAPI(title="kpi-ledger reporting", version="0.1.0", lifespan=lifespan)
    install_problem_handlers(app)

    async def database() -> None:
        await app.state.reporting.service.check_database()

    async def nats() -> None:
        await app.state.reporting.service.check_nats()

    checks = {"database": database, "nats": nats} if settings.run_consumer else {"database": database}
    app.include_router(health_router(checks))
    app.include_router(router)
    return app
