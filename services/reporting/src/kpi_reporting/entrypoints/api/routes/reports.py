"""Rankings, scorecards, history and diffs over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from kpi_common.access import PeriodReader, UnitReader, UnpublishedPeriodReader, UnpublishedUnitReader
from kpi_common.as_of import AsOf
from kpi_common.http_cache import REVALIDATE, conditional
from kpi_common.paging import AfterQuery, LimitQuery, link_next, page_of
from kpi_common.scope import ScopeDep
from kpi_reporting import reports, timeline_views, trends, views
from kpi_reporting.bootstrap import Reporting
from kpi_reporting.entrypoints.api.contracts import AnyRanking, Diff, HistoryEntry, Scorecard, Trend


async def get_reporting(request: Request) -> Reporting:
    return request.app.state.reporting  # type: ignore[no-any-return]


ReportingDep = Annotated[Reporting, Depends(get_reporting)]
AsOfQuery = Annotated[
    str | None,
    Query(description="A past moment: an event sequence (e.g. 1200) or a recorded time (e.g. 2025-03-31T17:00:00Z)"),
]
PillarQuery = Annotated[str | None, Query(description="Rank by this pillar's points instead of the total")]
PublicationQuery = Annotated[str | None, Query(description="With stage=published: this publication, not the latest")]
router = APIRouter(prefix="/v1", tags=["reports"])


@router.get("/rankings", response_model=AnyRanking, response_model_exclude_unset=True)
async def get_rankings(
    reader: PeriodReader,
    scope: ScopeDep,
    reporting: ReportingDep,
    request: Request,
    as_of: AsOfQuery = None,
    pillar: PillarQuery = None,
    publication: PublicationQuery = None,
) -> Any:
    """Units ranked (ties share a rank, shown "rank/N"), overall or per pillar; self-assessed,
    verified, or as published; `as_of` answers for a past moment. A published ranking carries an
    ETag (If-None-Match answers 304): it changes only when a restatement names it."""
    found = await reports.rankings(reporting, scope, as_of, pillar, publication)
    return conditional(request, found, REVALIDATE) if scope.stage == "published" else found


@router.get("/units/{unit}/scorecard", response_model=Scorecard, response_model_exclude_unset=True)
async def get_scorecard(
    reader: UnitReader, unit: str, scope: ScopeDep, reporting: ReportingDep, as_of: AsOfQuery = None
) -> dict[str, Any]:
    """A unit's scorecard: points, max, points missing, status, agencies and deadline per component,
    self-assessed and verified side by side with the gap, the change since the previous period, and
    the unit's general information."""
    return await reports.scorecard(reporting, scope, unit, as_of)


CatalogueQuery = Annotated[str, Query(examples=["vn-dti-province"])]
VersionQuery = Annotated[str, Query(examples=["1.0"])]
TrendStageQuery = Annotated[str, Query(pattern="^(self_assessment|verification|published)$")]
IndicatorQuery = Annotated[
    str | None,
    Query(
        max_length=50,
        description="Follow this node too: any scored code of the catalogue (a component, a pillar), or _T the total",
        examples=["3.1"],
    ),
]


@router.get("/units/{unit}/trend", response_model=Trend, response_model_exclude_unset=True)
async def get_trend(
    reader: UnitReader,
    unit: str,
    reporting: ReportingDep,
    catalogue: CatalogueQuery,
    version: VersionQuery,
    stage: TrendStageQuery = "self_assessment",
    indicator: IndicatorQuery = None,
) -> dict[str, Any]:
    """A unit's total and pillars over every period with data, with the peer group's median and best.
    Across a merger the line is carried, explicitly, by the units that stood for it: its predecessors
    before it existed, its successor after it ended, each with its own figures (`relation`). With
    `indicator`, that node too (`indicator`): each line's points, value, status and rank in the node."""
    return await trends.unit_trend(reporting, catalogue, version, stage, unit, indicator)


@router.get("/units/{unit}/history", response_model=list[HistoryEntry], response_model_exclude_unset=True)
async def get_history(
    reader: UnpublishedUnitReader,
    unit: str,
    scope: ScopeDep,
    reporting: ReportingDep,
    request: Request,
    response: Response,
    indicator: Annotated[str | None, Query()] = None,
    as_of: AsOfQuery = None,
    after: AfterQuery = 0,
    limit: LimitQuery = 100,
) -> list[dict[str, Any]]:
    """Every event about a unit in a catalogue version and period, in order, with who and when;
    paged like every list (`after`, `limit`, `Link: rel="next"`)."""
    async with reporting.service.sessions() as session:
        entries = await timeline_views.unit_history(session, scope, unit, indicator, AsOf.parse(as_of))
    found, more = page_of(entries, after, limit, lambda entry: int(entry["sequence"]))
    if more:
        link_next(request, response, found[-1]["sequence"])
    return found


@router.get("/diff", response_model=Diff, response_model_exclude_unset=True)
async def get_diff(
    reader: UnpublishedPeriodReader,
    scope: ScopeDep,
    reporting: ReportingDep,
    from_: Annotated[str, Query(alias="from", description="The earlier moment: a sequence or a time")],
    to: Annotated[str | None, Query(description="The later moment (default: now)")] = None,
) -> dict[str, Any]:
    """What changed for a catalogue version and period between two moments: ranks, scores, and the events."""
    before = await reports.result(reporting, scope, AsOf.parse(from_), full=True)
    after = await reports.result(reporting, scope, AsOf.parse(to), full=True)
    async with reporting.service.sessions() as session:
        events = await timeline_views.unit_history(session, scope, None, None, AsOf.parse(to))
    # the events that can move scores: this stage's measurements
    return views.diff_view(before, after, [event for event in events if event.get("stage") == scope.stage])
