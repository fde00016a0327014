"""The dashboard's routes: server-rendered pages over the read models the JSON API answers from.

Each page authenticates the caller (`session.caller_key`) and asks the reader function its JSON twin
depends on; a refusal is a page for a browser and the API's problem for any other client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials

from kpi_common.access import period_reader, presented_key, unit_reader, unpublished_unit_reader
from kpi_common.problems import Problem
from kpi_common.scope import ScopeDep
from kpi_reporting.dashboard import reads, tables
from kpi_reporting.dashboard.i18n import language
from kpi_reporting.dashboard.rendering import STATIC, problem_page, render, static_file
from kpi_reporting.dashboard.session import (
    LONGEST_SECRET,
    PREFIX,
    caller_key,
    check_csrf,
    end_session,
    next_page,
    start_session,
)
from kpi_reporting.entrypoints.api.routes import exports
from kpi_reporting.entrypoints.api.routes.reports import ReportingDep

router = APIRouter(prefix=PREFIX, include_in_schema=False)

CatalogueParam = Annotated[str | None, Query(max_length=100)]
VersionParam = Annotated[str | None, Query(max_length=50)]
PeriodParam = Annotated[int | None, Query(ge=2000, le=2100)]
StageParam = Annotated[str, Query(pattern="^(self_assessment|verification|published)$")]
LangParam = Annotated[str | None, Query(pattern="^(vi|en)$")]
PillarParam = Annotated[str | None, Query(max_length=20)]
Page = Callable[[], Awaitable[Response]]
Build = Callable[[reads.Choice], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Asked:
    """What a page's pickers asked for (None: the defaults `reads.choose` picks), and a table to download."""

    catalogue: str | None
    version: str | None
    period: int | None
    lang: str | None
    download: str | None


async def asked(
    catalogue: CatalogueParam = None,
    version: VersionParam = None,
    period: PeriodParam = None,
    lang: LangParam = None,
    download: Annotated[str | None, Query(pattern=tables.DOWNLOAD_PATTERN)] = None,
) -> Asked:
    return Asked(catalogue, version, period, lang, download)


AskedDep = Annotated[Asked, Depends(asked)]


async def shown(request: Request, page: Page) -> Response:
    try:
        return await page()
    except Problem as problem:
        return problem_page(request, problem)


def answer(request: Request, template: str, context: dict[str, Any], download: str | None) -> Response:
    """The page, or with `download` one of its tables as a file (read and refused as the page is)."""
    if download is None:
        return render(request, template, context)
    choice: reads.Choice = context["choice"]
    stem = "-".join(str(part) for part in (context.get("unit_id"), *choice.query().values()) if part)
    return tables.download(context.get("tables", []), download, stem)


async def _period_choice(request: Request, reporting: ReportingDep, pick: Asked, stage: str) -> reads.Choice:
    """The page's scope, once the caller may read every unit's figures in it (the rankings' rule)."""
    key = await caller_key(request)
    if pick.catalogue and pick.version:
        await period_reader(request, key, pick.catalogue, pick.version, stage)
    choice = await reads.choose(reporting, pick.catalogue, pick.version, pick.period, stage)
    await period_reader(request, key, choice.catalogue.id, choice.catalogue.version, stage)
    return choice


async def _unit_choice(
    request: Request, reporting: ReportingDep, unit: str, pick: Asked, stage: str, *, published_ever: bool
) -> reads.Choice:
    """The page's scope, once the caller may read this unit's figures in it (the scorecard's rule, or
    for what is never published, the history's)."""
    key = await caller_key(request)

    async def authorize(cid: str, ver: str) -> None:
        if published_ever:
            await unit_reader(request, unit, key, cid, ver, stage)
        else:
            await unpublished_unit_reader(request, unit, key, cid, ver)

    if pick.catalogue and pick.version:
        await authorize(pick.catalogue, pick.version)
    choice = await reads.choose(reporting, pick.catalogue, pick.version, pick.period, stage)
    await authorize(choice.catalogue.id, choice.catalogue.version)
    return choice


async def unit_page(
    request: Request,
    reporting: ReportingDep,
    unit: str,
    pick: Asked,
    stage: str,
    template: str,
    build: Build,
    *,
    published_ever: bool = True,
) -> Response:
    """A page about one unit: its scope authorized, its context built, rendered (or a table downloaded)."""

    async def page() -> Response:
        choice = await _unit_choice(request, reporting, unit, pick, stage, published_ever=published_ever)
        context = {"choice": choice, "unit_id": unit, **await build(choice)}
        return answer(request, template, context, pick.download)

    return await shown(request, page)


@router.get("")
async def rankings(
    request: Request,
    reporting: ReportingDep,
    pick: AskedDep,
    stage: StageParam = "published",
    pillar: PillarParam = None,
    publication: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The ranking: total and pillars, rank/N, change since the previous period, bars and a heat map."""

    async def page() -> Response:
        choice = await _period_choice(request, reporting, pick, stage)
        pillars = reads.pillars_of(choice.catalogue)
        context: dict[str, Any] = {
            "choice": choice,
            "picked_pillar": pillar,
            "pillars": pillars,
            # every key the template reads, even when there is nothing to show (StrictUndefined)
            "pillar": next((p for p in pillars if p["code"] == pillar), None),
        }
        try:
            context |= await reads.rankings_page(reporting, choice, pillar or None, publication, language(pick.lang))
        except Problem as absent:
            if absent.title != "Not published":
                raise
            return render(request, "rankings.html", {**context, "empty": True}, 404)
        return render(request, "rankings.html", {**context, "empty": False})

    return await shown(request, page)


@router.get("/units/{unit}")
async def scorecard(
    request: Request, reporting: ReportingDep, unit: str, pick: AskedDep, stage: StageParam = "published"
) -> Response:
    """A unit's scorecard: every pillar and component, both stages side by side, where the points are."""

    async def build(choice: reads.Choice) -> dict[str, Any]:
        return await reads.scorecard_page(reporting, choice, unit)

    return await unit_page(request, reporting, unit, pick, stage, "scorecard.html", build)


@router.get("/units/{unit}/trend")
async def trend(
    request: Request,
    reporting: ReportingDep,
    unit: str,
    pick: AskedDep,
    stage: StageParam = "published",
    indicator: Annotated[str | None, Query(max_length=50)] = None,
) -> Response:
    """A unit's total, pillars and any indicator over every period with data, with the peer group's median and best."""

    async def build(choice: reads.Choice) -> dict[str, Any]:
        return await reads.trend_page(reporting, choice, unit, language(pick.lang), indicator or None)

    return await unit_page(request, reporting, unit, pick, stage, "trend.html", build)


@router.get("/units/{unit}/history")
async def history(
    request: Request, reporting: ReportingDep, unit: str, pick: AskedDep, stage: StageParam = "self_assessment"
) -> Response:
    """A unit's audit trail: submissions, verifications with reasons and the scores they left, publications."""

    async def build(choice: reads.Choice) -> dict[str, Any]:
        return await reads.history_page(reporting, choice, unit)

    return await unit_page(request, reporting, unit, pick, stage, "history.html", build, published_ever=False)


@router.get("/publications")
async def publications(request: Request, reporting: ReportingDep, pick: AskedDep) -> Response:
    """The period's publications and restatements, and the ranks each restatement moved."""

    async def page() -> Response:
        choice = await _period_choice(request, reporting, pick, "published")
        context = {"choice": choice, **await reads.publications_page(reporting, choice)}
        return answer(request, "publications.html", context, pick.download)

    return await shown(request, page)


def _workbook(request: Request) -> bool:
    return request.url.path.endswith(".xlsx")


@router.get("/rankings.csv")
@router.get("/rankings.xlsx")
async def rankings_export(
    request: Request,
    reporting: ReportingDep,
    scope: ScopeDep,
    pillar: PillarParam = None,
    publication: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The ranking's CSV or XLSX for a reader logged in here: the API's own export (GET /v1/rankings.csv, .xlsx)."""

    async def page() -> Response:
        key = await caller_key(request)
        reader = await period_reader(request, key, scope.catalogue_id, scope.version, scope.stage)
        export = exports.export_rankings_xlsx if _workbook(request) else exports.export_rankings
        return await export(
            reader=reader, scope=scope, reporting=reporting, pillar=pillar or None, publication=publication
        )

    return await shown(request, page)


@router.get("/units/{unit}/scorecard.csv")
@router.get("/units/{unit}/scorecard.xlsx")
async def scorecard_export(request: Request, reporting: ReportingDep, unit: str, scope: ScopeDep) -> Response:
    """A scorecard's CSV or XLSX for a reader logged in here: the API's own export (/v1/units/{unit}/scorecard.*)."""

    async def page() -> Response:
        key = await caller_key(request)
        reader = await unit_reader(request, unit, key, scope.catalogue_id, scope.version, scope.stage)
        export = exports.export_scorecard_xlsx if _workbook(request) else exports.export_scorecard
        return await export(reader=reader, unit=unit, scope=scope, reporting=reporting)

    return await shown(request, page)


@router.get("/login")
async def login_form(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None, lang: LangParam = None
) -> Response:
    """The login form: an API key, kept in an HTTP-only session cookie."""
    return render(request, "login.html", {"next": next_page(next), "message": None})


@router.post("/login")
async def login(
    request: Request,
    key: Annotated[str, Form(max_length=LONGEST_SECRET)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Checks the form's token and the key (as every API call checks a key), then keeps the key in the cookie."""
    secret = key.strip()
    try:
        check_csrf(request, csrf)
        found = await presented_key(request, HTTPAuthorizationCredentials(scheme="Bearer", credentials=secret), None)
    except Problem as problem:
        if problem.status != 401 or not secret:
            return problem_page(request, problem)
        found = None
    if found is None:
        context = {"next": next_page(next), "message": "key_refused" if secret else "api_key"}
        return render(request, "login.html", context, 401)
    response = RedirectResponse(next_page(next), status_code=303)
    start_session(response, secret)
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """Forgets the key (a form with the page's token, so that no other site can log a reader out)."""
    try:
        check_csrf(request, csrf)
    except Problem as problem:
        return problem_page(request, problem)
    response = RedirectResponse(PREFIX, status_code=303)
    end_session(response)
    return response


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The stylesheet and the icon, shipped in the package (no CDN: the dashboard works offline)."""
    body = static_file(name)
    if body is None:
        raise Problem(404, "Not found", f"no dashboard file {name}")
    return Response(body, media_type=STATIC[name], headers={"cache-control": "public, max-age=3600"})
