"""What each page shows, read through the functions the JSON routes call (`kpi_reporting.reports`,
`views`, `timeline_views`): the dashboard lays out their answers and draws them; it computes no points."""

from __future__ import annotations

import bisect
import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlalchemy import select

from kpi_common.problems import Problem
from kpi_core.catalogue import Catalogue
from kpi_core.scope import Scope
from kpi_core.scoring import display_points
from kpi_reporting import reports, timeline_views, trends, views
from kpi_reporting.adapters.orm import score_lines
from kpi_reporting.bootstrap import Reporting
from kpi_reporting.dashboard import charts, tables
from kpi_reporting.service_layer.score_projection import answers_through

PREFERRED = "vn-dti-province"
STAGES = ("published", "verification", "self_assessment")


@dataclass(frozen=True)
class Choice:
    """The pickers' options and what is picked."""

    catalogue: Catalogue
    catalogues: list[tuple[str, str]]  # (id, title) of the catalogues with points
    versions: list[str]
    periods: list[int]
    period: int
    stage: str
    with_data: tuple[int, ...] = ()  # the periods with data in the stage

    def scope(self) -> Scope:
        return Scope(self.catalogue.id, self.catalogue.version, self.period, self.stage)

    def query(self) -> dict[str, Any]:
        return {"catalogue": self.catalogue.id, "version": self.catalogue.version, "period": self.period}


async def choose(
    reporting: Reporting, catalogue_id: str | None, version: str | None, period: int | None, stage: str
) -> Choice:
    """The catalogue version, period and stage asked for, or the defaults: the provincial DTI, its
    latest version, the latest period with data in the stage."""
    async with reporting.service.sessions() as session:
        known = await reporting.catalogues.versions(session)
        parsed = [await reporting.catalogues.get(session, cid, ver) for cid, ver in known]
        ranked = [found for found in parsed if found is not None and found.kind == "points"]
        ids = sorted({found.id for found in ranked})
        chosen_id = catalogue_id or (PREFERRED if PREFERRED in ids else (ids[0] if ids else None))
        versions = sorted(ver for cid, ver in known if cid == chosen_id)
        chosen_version = version or (versions[-1] if versions else None)
        catalogue = (
            await reporting.catalogues.get(session, chosen_id, chosen_version) if chosen_id and chosen_version else None
        )
        if catalogue is None:
            raise Problem(404, "Not found", f"catalogue {chosen_id} version {chosen_version} is not known here")
        in_stage = await timeline_views.periods_with_data(session, catalogue.id, catalogue.version, stage)
        reported = await timeline_views.periods_with_data(session, catalogue.id, catalogue.version, "self_assessment")
    fallback = in_stage[-1] if in_stage else (reported[-1] if reported else datetime.date.today().year - 1)
    chosen_period = period or fallback
    titles = {found.id: found.title_vi for found in ranked}
    return Choice(
        catalogue,
        [(cid, titles[cid]) for cid in ids],
        versions,
        sorted({*in_stage, *reported, chosen_period}),
        chosen_period,
        stage,
        tuple(in_stage),
    )


def pillars_of(catalogue: Catalogue) -> list[dict[str, Any]]:
    return [
        {"code": root.code, "name_vi": root.name_vi, "name_en": root.name_en, "max_points": str(root.max_points)}
        for root in catalogue.roots
        if root.scored
    ]


async def _previous(reporting: Reporting, choice: Choice, pillar: str | None) -> dict[str, Any] | None:
    if choice.period - 1 not in choice.with_data:
        return None
    try:
        return await reports.rankings(reporting, choice.scope().previous(), None, pillar, None)
    except Problem as absent:
        if absent.status == 404:
            return None
        raise


async def rankings_page(
    reporting: Reporting, choice: Choice, pillar: str | None, publication: str | None, lang: str
) -> dict[str, Any]:
    ranking = await reports.rankings(reporting, choice.scope(), None, pillar, publication)
    previous = await _previous(reporting, choice, pillar)
    catalogue = choice.catalogue
    predecessors: dict[str, list[str]] = {}
    if previous is not None:
        async with reporting.service.sessions() as session:
            registry = await reporting.peer_groups.registry(session)
        ranked_then = {row["unit_id"] for row in previous["rankings"]}
        for row in ranking["rankings"]:
            if row["unit_id"] not in ranked_then:
                standing = registry.standing_for(
                    catalogue.peer_group, row["unit_id"], choice.period - 1, catalogue.period_reference_day
                )
                predecessors[row["unit_id"]] = [unit.id for unit, relation in standing if relation == "predecessor"]
    pillars = pillars_of(catalogue)
    by_code = {p["code"]: p for p in pillars}
    if pillar is not None and pillar not in by_code:
        raise Problem(
            422,
            "Unknown pillar",
            f"{catalogue.id} has no scored pillar {pillar}",
            [{"field": "pillar", "message": pillar}],
        )
    rows = ranking["rankings"]

    def name(row: dict[str, Any]) -> str:
        shown = row.get("unit_name_en") if lang == "en" else row.get("unit_name_vi")
        return str(shown or row.get("unit_name_vi") or row["unit_id"])

    shown_points = [row["pillars"].get(pillar) if pillar else row["total"] for row in rows]
    maximum = by_code[pillar]["max_points"] if pillar else (str(catalogue.total_max_points or "") or None)
    return {
        "ranking": ranking,
        "rows": list(zip(rows, shown_points, strict=True)),
        "pillars": pillars,
        "pillar": by_code.get(pillar or ""),
        "changes": views.changes_since(ranking, previous, predecessors),
        "previous_period": choice.period - 1 if previous is not None else None,
        "bars": charts.bar_chart(
            [(name(row), points, None) for row, points in zip(rows, shown_points, strict=True)], maximum
        ),
        "heat": charts.heat_map(
            [(p["code"], p["max_points"]) for p in pillars],
            [(name(row), [row["pillars"].get(p["code"]) for p in pillars]) for row in rows],
        ),
        "heat_names": {p["code"]: p["name_en"] if lang == "en" and p["name_en"] else p["name_vi"] for p in pillars},
        "maximum": maximum,
    }


def flatten(nodes: list[dict[str, Any]], depth: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    for node in nodes:
        yield depth, node
        yield from flatten(node.get("children", []), depth + 1)


async def scorecard_page(reporting: Reporting, choice: Choice, unit: str) -> dict[str, Any]:
    card = await reports.scorecard(reporting, choice.scope(), unit, None)
    rows = list(flatten(card["pillars"]))
    gain = views.points_to_gain(card)
    return {
        "card": card,
        "rows": rows,
        "side_by_side": any("verified_points" in node for _, node in rows),
        "gain": gain,
        "tables": [tables.gain_table(gain), tables.information_table(card.get("general_information") or {})],
    }


SERIES_KINDS = {"self": "unit", "predecessor": "predecessor", "successor": "successor"}


def indicators_of(catalogue: Catalogue) -> list[dict[str, Any]]:
    """The trend's indicator picker: every scored node below a pillar, by pillar, in catalogue order."""
    return [
        {"code": node.code, "name_vi": node.name_vi, "name_en": node.name_en, "pillar": node.code.split(".")[0]}
        for node in catalogue.nodes
        if node.scored and node.parent is not None
    ]


def _shown(points: Fraction | None) -> str | None:
    found = display_points(points)
    return str(found) if found is not None else None


async def indicator_trend(
    reporting: Reporting, choice: Choice, trend: dict[str, Any], code: str, lang: str
) -> dict[str, Any]:
    """One indicator (any scored node) over the trend's periods, as the API answers it
    (`trends.node_trend`): the points of each unit that stands for the unit then, and the peer group's
    median and best of that indicator; with each line's name in the page's language, and its chart."""
    found = await trends.node_trend(reporting, trends.follow(choice.catalogue, code), trend)
    points = [
        {
            **point,
            "lines": [
                {
                    **line,
                    "name_vi": line.get("unit_name_vi") or line["unit_id"],
                    "name": line.get("unit_name_en" if lang == "en" else "unit_name_vi") or line["unit_id"],
                }
                for line in point["lines"]
            ],
        }
        for point in found["periods"]
    ]
    maximum = found["max_points"]
    series: dict[str, tuple[str, str, dict[int, str | None]]] = {}
    for point in points:
        for line in point["lines"]:
            kind = SERIES_KINDS.get(line["relation"], "unit")
            series.setdefault(line["unit_id"], (line["name"], kind, {}))[2][point["period"]] = line["points"]
    context = [
        ("median", "median", {point["period"]: point["peer_median"] for point in points}),
        ("best", "best", {point["period"]: point["peer_best"] for point in points}),
    ]
    periods = [point["period"] for point in points]
    return {**found, "periods": points, "chart": charts.line_chart(periods, [*series.values(), *context], maximum)}


async def trend_page(
    reporting: Reporting, choice: Choice, unit: str, lang: str, indicator: str | None = None
) -> dict[str, Any]:
    trend = await reports.trend(reporting, choice.catalogue.id, choice.catalogue.version, choice.stage, unit)
    periods = [point["period"] for point in trend["periods"]]
    lines: dict[str, dict[str, Any]] = {}
    for point in trend["periods"]:
        for line in point["lines"]:
            drawn = lines.setdefault(
                line["unit_id"],
                {
                    "name": line.get("unit_name_en" if lang == "en" else "unit_name_vi") or line["unit_id"],
                    "kind": SERIES_KINDS.get(line["relation"], "unit"),
                    "by_period": {},
                },
            )
            drawn["by_period"][point["period"]] = line
    totals = [
        (line["name"], line["kind"], {p: row.get("total") for p, row in line["by_period"].items()})
        for line in lines.values()
    ]
    context = [
        ("median", "median", {point["period"]: point["peer_median"] for point in trend["periods"]}),
        ("best", "best", {point["period"]: point["peer_best"] for point in trend["periods"]}),
    ]
    maximum = str(choice.catalogue.total_max_points) if choice.catalogue.total_max_points is not None else None
    pillar_charts = [
        (
            pillar,
            charts.line_chart(
                periods,
                [
                    (
                        line["name"],
                        line["kind"],
                        {p: (row.get("pillars") or {}).get(pillar["code"]) for p, row in line["by_period"].items()},
                    )
                    for line in lines.values()
                ],
                pillar["max_points"],
                height=180,
            ),
        )
        for pillar in pillars_of(choice.catalogue)
    ]
    shown = await indicator_trend(reporting, choice, trend, indicator, lang) if indicator else None
    return {
        "trend": trend,
        "total_chart": charts.line_chart(periods, [*totals, *context], maximum),
        "pillar_charts": pillar_charts,
        "indicators": indicators_of(choice.catalogue),
        "indicator": shown,
        "tables": [tables.trend_table(trend), *([tables.indicator_table(shown)] if shown else [])],
    }


EVENT_LABELS = {
    "vn.kpi.evidence.requested.v1": "ev_evidence",
    "vn.kpi.period.closed.v1": "ev_closed",
    "vn.kpi.period.reopened.v1": "ev_reopened",
    "vn.kpi.context.reported.v1": "ev_context",
    "vn.kpi.result.published.v1": "ev_published",
}


def event_label(entry: dict[str, Any]) -> str:
    """The i18n key naming what a history entry is."""
    if "stage" not in entry:
        return EVENT_LABELS.get(str(entry["type"]), str(entry["type"]))
    if entry["stage"] == "verification":
        return "ev_verification"
    if entry.get("not_applicable_reason"):
        return "ev_not_applicable"
    return "ev_response" if entry.get("responds_to") else "ev_submitted"


def event_summary(data: dict[str, Any]) -> str:
    """The words of a workflow event worth a column: a request's message, a reason, values, an id."""
    if "values" in data:
        return "; ".join(f"{name} = {value}" for name, value in data["values"].items())
    for field_name in ("message", "reason", "incomplete_reason", "publication_id"):
        if data.get(field_name):
            return str(data[field_name])
    return ""


async def explanations(
    session: Any, scope: Scope, unit: str, entries: list[dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """The score of each measurement or verification of the history as it stood after the event, by the
    event's sequence: the latest line of its indicator and stage up to that sequence (what scoring
    computed, the formula with the numbers substituted), from one read of the unit's lines; none for an
    event the scores do not answer for yet."""
    answered = await answers_through(session)
    asked = [e for e in entries if e.get("stage") and e.get("indicator") and e["sequence"] <= answered]
    if not asked:
        return {}
    query = (
        select(score_lines.c.stage, score_lines.c.code, score_lines.c.sequence, score_lines.c.status,
               score_lines.c.points, score_lines.c.max_points, score_lines.c.detail)
        .where(score_lines.c.catalogue_id == scope.catalogue_id, score_lines.c.version == scope.version,
               score_lines.c.period == scope.period, score_lines.c.unit_id == unit,
               score_lines.c.code.in_(sorted({e["indicator"] for e in asked})))
        .order_by(score_lines.c.sequence)
    )  # fmt: skip
    lines: dict[tuple[str, str], list[Any]] = {}
    for row in await session.execute(query):
        lines.setdefault((row.stage, row.code), []).append(row)
    found: dict[int, dict[str, Any]] = {}
    for entry in asked:
        rows = lines.get((entry["stage"], entry["indicator"]), [])
        at = bisect.bisect_right([row.sequence for row in rows], entry["sequence"]) - 1
        if at < 0:
            continue
        row = rows[at]
        detail = json.loads(row.detail)
        found[entry["sequence"]] = {
            "status": row.status,
            "points": _shown(Fraction(row.points)) if row.points is not None else None,
            "max_points": _shown(Fraction(row.max_points)) if row.max_points is not None else None,
            "formula": detail.get("formula") or "",
            "value": detail.get("value"),
            "line_sequence": row.sequence,
        }
    return found


async def history_page(reporting: Reporting, choice: Choice, unit: str) -> dict[str, Any]:
    async with reporting.service.sessions() as session:
        entries = await timeline_views.unit_history(session, choice.scope(), unit, None, None)
        registry = await reporting.peer_groups.registry(session)
        explained = await explanations(session, choice.scope(), unit, entries)
    known = registry.unit(unit)
    if known is None:
        raise Problem(404, "Unknown unit", f"{unit} is not a registered unit", [{"field": "unit", "message": unit}])
    shown = [
        {
            **entry,
            "label": event_label(entry),
            "summary": event_summary(entry.get("data") or {}),
            "explanation": explained.get(entry["sequence"]),
        }
        for entry in entries
    ]
    return {"entries": shown, "unit": known, "tables": [tables.history_table(shown)]}


async def publications_page(reporting: Reporting, choice: Choice) -> dict[str, Any]:
    async with reporting.service.sessions() as session:
        found = await timeline_views.publications(session, choice.scope(), None)
        registry = await reporting.peer_groups.registry(session)
    names = {
        unit.id: (unit.name_vi, unit.name_en)
        for unit in registry.members(choice.catalogue.peer_group, choice.period, choice.catalogue.period_reference_day)
    }
    restated = {p["replaces"]: p["publication_id"] for p in found if p.get("replaces")}
    listed = list(reversed(found))
    return {
        "publications": listed,
        "restated": restated,
        "names": names,
        "tables": [tables.publications_table(listed, restated)],
    }
