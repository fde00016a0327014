"""Assembling rankings and scorecards for a request: computed stages, published results, past moments."""

from __future__ import annotations

import statistics
from fractions import Fraction
from typing import Any

from kpi_common.as_of import AsOf
from kpi_common.problems import Problem
from kpi_core.scope import Scope
from kpi_core.scoring import display_points
from kpi_reporting import timeline_views, views
from kpi_reporting.bootstrap import Reporting


async def result(reporting: Reporting, scope: Scope, moment: AsOf | None, *, full: bool = False) -> views.PeriodResult:
    async with reporting.service.sessions() as session:
        return await views.period_result(
            session,
            reporting.catalogues,
            reporting.peer_groups,
            reporting.service.tracking,
            reporting.cache,
            scope,
            moment,
            full=full,
        )


async def publication(
    reporting: Reporting,
    scope: Scope,
    moment: AsOf | None,
    publication_id: str | None,
    pillar: str | None,
) -> dict[str, Any]:
    async with reporting.service.sessions() as session:
        found = await timeline_views.publications(session, scope, moment)
        registry = await reporting.peer_groups.registry(session)
    published = timeline_views.published_view(found, publication_id, pillar, registry)
    if published is None:
        raise Problem(404, "Not published", "no publication for this catalogue version and period (at that moment)")
    return published


async def rankings(
    reporting: Reporting, scope: Scope, as_of: str | None, pillar: str | None, publication_id: str | None
) -> dict[str, Any]:
    moment = AsOf.parse(as_of)
    if scope.stage == "published":
        return await publication(reporting, scope, moment, publication_id, pillar)
    return views.rankings_view(await result(reporting, scope, moment), scope, pillar)


async def scorecard(reporting: Reporting, scope: Scope, unit: str, as_of: str | None) -> dict[str, Any]:
    moment = AsOf.parse(as_of)
    published: dict[str, Any] | None = None
    if scope.stage == "published":
        # exactly as published: the stage it froze, at the sequence it froze
        published = await publication(reporting, scope, moment, None, None)
        scope = scope.at_stage(published["published_stage"])
        moment = AsOf(sequence=published["as_of_sequence"])
    current = await result(reporting, scope, moment)
    other_stage = "verification" if scope.stage == "self_assessment" else "self_assessment"
    async with reporting.service.sessions() as session:
        score = await views.unit_score(session, current.catalogue, scope, unit, current.position)
        context = views.CardContext(
            other_stage=await views.unit_score(
                session, current.catalogue, scope.at_stage(other_stage), unit, current.position
            ),
            previous_period=await views.unit_score(
                session, current.catalogue, scope.previous(), unit, current.position
            ),
            verifications=await timeline_views.verifications(session, scope, unit, moment),
        )
        information = await timeline_views.general_information(session, scope, unit, moment)
    card = views.scorecard_view(current, scope, unit, score, context, information)
    if published is not None:
        entry = next((row for row in published["rankings"] if row["unit_id"] == unit), None)
        card |= {
            "stage": "published",
            "publication_id": published["publication_id"],
            "rank": entry["rank"] if entry else None,
            "rank_label": entry["rank_label"] if entry else None,
        }
    return card


async def trend(reporting: Reporting, catalogue_id: str, version: str, stage: str, unit: str) -> dict[str, Any]:
    """A unit's total and pillars over every period with data, carried across mergers by the units
    that stood for it (its predecessors before it existed, its successors after it ended), each with
    its own figures; and the peer group's median and best for context."""
    async with reporting.service.sessions() as session:
        catalogue = await reporting.catalogues.get(session, catalogue_id, version)
        registry = await reporting.peer_groups.registry(session)
        periods = await timeline_views.periods_with_data(session, catalogue_id, version, stage)
    if catalogue is None:
        raise Problem(404, "Not found", f"catalogue {catalogue_id} version {version} is not known here")
    group = registry.group(catalogue.peer_group)
    known = group.unit(unit) if group else None
    if known is None:
        raise Problem(
            404,
            "Unknown unit",
            f"{unit} is not a unit of the peer group {catalogue.peer_group}",
            [{"field": "unit", "message": "not registered in the catalogue's peer group"}],
        )
    points: list[dict[str, Any]] = []
    for period in periods:
        standing = registry.standing_for(catalogue.peer_group, unit, period, catalogue.period_reference_day)
        if not standing:
            continue
        try:
            ranking = await rankings(reporting, Scope(catalogue_id, version, period, stage), None, None, None)
        except Problem as absent:
            if absent.status == 404:
                continue
            raise
        rows = {row["unit_id"]: row for row in ranking["rankings"]}
        totals = sorted(Fraction(row["total"] or "0") for row in ranking["rankings"])
        points.append(
            {
                "period": period,
                "units_ranked": len(totals),
                "peer_median": _shown(statistics.median(totals)) if totals else None,
                "peer_best": _shown(totals[-1]) if totals else None,
                "lines": [
                    {"relation": relation, **rows.get(member.id, {"unit_id": member.id, "status": "missing"})}
                    for member, relation in standing
                ],
            }
        )
    return {
        "catalogue": catalogue_id,
        "version": version,
        "stage": stage,
        "unit_id": unit,
        "unit_name_vi": known.name_vi,
        "unit_name_en": known.name_en,
        "peer_group": catalogue.peer_group,
        "periods": points,
    }


def _shown(points: Fraction) -> str:
    return str(display_points(points))
