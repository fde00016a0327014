"""The scoring app factory: score explanations over HTTP; the consumer runs in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from sqlalchemy import func, select

from kpi_common.access import StaffKey, UnpublishedUnitReader, require_read
from kpi_common.as_of import LARGEST_SEQUENCE, AsOf
from kpi_common.health import health_router
from kpi_common.http_security import install_http_security
from kpi_common.observability import install_observability
from kpi_common.openapi import install_openapi
from kpi_common.outbox_metrics import outbox_probe
from kpi_common.problems import Problem, install_problem_handlers
from kpi_common.projection_metrics import projection_probe
from kpi_common.projection_service import ProjectionService
from kpi_common.scope import ScopeDep
from kpi_common.streams import SCORES
from kpi_core.scope import Scope
from kpi_scoring import views
from kpi_scoring.adapters.orm import dead_letters, score_log, score_outbox
from kpi_scoring.adapters.score_outbox import WITHHELD_BY
from kpi_scoring.bootstrap import build
from kpi_scoring.config import Settings
from kpi_scoring.entrypoints.api.contracts import Score, ScoreChange


async def get_scoring(request: Request) -> ProjectionService:
    return request.app.state.scoring  # type: ignore[no-any-return]


ScoringDep = Annotated[ProjectionService, Depends(get_scoring)]


router = APIRouter(prefix="/v1", tags=["scores"])


AsOfQuery = Annotated[str | None, Query(description="A past moment: an event sequence or an ISO 8601 time")]


async def _scores(
    scoring: ProjectionService, scope: Scope, unit: str, code: str | None, as_of: str | None
) -> list[dict[str, Any]]:
    moment = AsOf.parse(as_of)
    async with scoring.sessions() as session:
        if moment is None:
            return await views.unit_scores(session, scope, unit, code)
        return await views.unit_scores_as_of(session, scope, unit, code, moment)


@router.get("/units/{unit}/scores", response_model=list[Score])
async def get_unit_scores(
    reader: UnpublishedUnitReader, unit: str, scope: ScopeDep, scoring: ScoringDep, as_of: AsOfQuery = None
) -> list[dict[str, Any]]:
    """Every score of one unit (indicators, pillars, total "*"), with explanations; `as_of` for a past moment."""
    return await _scores(scoring, scope, unit, None, as_of)


@router.get("/units/{unit}/scores/{code}", response_model=Score)
async def get_unit_score(
    reader: UnpublishedUnitReader, unit: str, code: str, scope: ScopeDep, scoring: ScoringDep, as_of: AsOfQuery = None
) -> dict[str, Any]:
    """One score with its explanation: rule, inputs, source event, formula with the numbers substituted."""
    found = await _scores(scoring, scope, unit, code, as_of)
    if not found:
        raise Problem(404, "Not found", f"no score for unit {unit}, indicator {code} in this scope")
    return found[0]


@router.get("/events/{sequence}/scores", response_model=list[ScoreChange])
async def get_scores_changed_by_event(
    key: StaffKey,
    sequence: Annotated[int, Path(ge=1, le=LARGEST_SEQUENCE)],
    scoring: ScoringDep,
    request: Request,
) -> list[dict[str, Any]]:
    """Lineage: every score an event changed (peer-relative rules can change other units' scores too);
    an evaluator or approver reads it for events of its peer groups (a key for every unit)."""
    async with scoring.sessions() as session:
        changes = await views.changes_by_event(session, sequence)
    for catalogue, version in {(change["catalogue"], change["version"]) for change in changes}:
        await require_read(request, key, catalogue, version, None)
    return changes


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scoring = build(settings)
        app.state.scoring = scoring.service
        app.state.keys, app.state.auth_failures = scoring.keys, scoring.auth_failures
        app.state.peer_group_of = scoring.catalogues.peer_group_lookup(scoring.service.sessions)
        app.state.metrics.probe(projection_probe(scoring.service, dead_letters))
        sessions = scoring.service.sessions
        withheld = select(func.count()).select_from(dead_letters).where(dead_letters.c.consumer == WITHHELD_BY)
        app.state.metrics.probe(outbox_probe(sessions, score_outbox, score_log, scoring.relay, SCORES.name, withheld))
        relaying = None
        if settings.run_consumer:
            app.state.scoring.start()
            relaying = asyncio.create_task(scoring.relay.run(), name="scoring-relay")
        try:
            yield
        finally:
            await app.state.scoring.close()
            if relaying is not None:
                await scoring.relay.stop()
                await asyncio.gather(relaying, return_exceptions=True)

    app = FastAPI(title="kpi-ledger scoring", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_problem_handlers(app)
    install_openapi(app)
    install_http_security(app, max_body_bytes=settings.max_body_bytes, cors_origins=settings.cors_origins)
    install_observability(app, "scoring")

    async def database() -> None:
        await app.state.scoring.check_database()

    async def nats() -> None:
        await app.state.scoring.check_nats()

    checks = {"database": database, "nats": nats} if settings.run_consumer else {"database": database}
    app.include_router(health_router(checks))
    app.include_router(router)
    return app
