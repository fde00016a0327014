"""The trend of one node of a catalogue (a component, a pillar, or the total) for a unit, over every period
with data: in each period the points of each unit that stood for it (itself; across a merger its
predecessors or its successor, each with its own figures, as `reports.trend` lines them), its rank in the
peer group for that node, and the peer group's median and best of it.

Read from the scores scoring computed, as the scorecards read them (a publication: the stage it froze, at
the sequence it froze, its own units); nothing is scored here. The JSON route, the CSV export and the
dashboard's trend page all read a node's trend from `node_trend`.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from kpi_common.as_of import AsOf
from kpi_common.problems import Problem
from kpi_core.catalogue import Catalogue
from kpi_core.ranking import rank_units
from kpi_core.scope import Scope
from kpi_core.scoring import UnitScore, display_points
from kpi_reporting import reports, views
from kpi_reporting.bootstrap import Reporting

TOTAL = "_T"  # the total, as the SDMX export names it
NAMES = ("unit_name_vi", "unit_name_en", "unit_code")


@dataclass(frozen=True)
class Followed:
    """The node a trend follows, and how its ranks are read."""

    catalogue: Catalogue
    code: str  # a scored code of the catalogue, or TOTAL
    name_vi: str
    name_en: str | None
    max_points: str | None
    ranked_as: str | None  # the API's own ranking ranks it: "" the total, else the pillar ranked by

    def points(self, score: UnitScore | None) -> Fraction | None:
        """A unit's points in the node (None: the unit has no scores in the period)."""
        if score is None:
            return None
        return score.total if self.code == TOTAL else score.node_points.get(self.code, Fraction(0))

    def header(self) -> dict[str, Any]:
        return {"code": self.code, "name_vi": self.name_vi, "name_en": self.name_en, "max_points": self.max_points}


def follow(catalogue: Catalogue, code: str) -> Followed:
    """The node `code` names: any scored node of the catalogue, or TOTAL; 422 naming `indicator` otherwise."""
    if code == TOTAL:
        maximum = str(catalogue.total_max_points) if catalogue.total_max_points is not None else None
        return Followed(catalogue, TOTAL, "Tổng điểm", "Total", maximum, "")
    node = catalogue.node(code)
    if node is None or not node.scored:
        raise Problem(
            422, "Unknown indicator", f"{catalogue.id} has no scored indicator {code}",
            [{"field": "indicator", "message": code}],
        )  # fmt: skip
    maximum = str(node.max_points) if node.max_points is not None else None
    return Followed(catalogue, code, node.name_vi, node.name_en, maximum, code if node.parent is None else None)


def _shown(points: Fraction | None) -> str | None:
    found = display_points(points)
    return str(found) if found is not None else None


def period_figures(
    followed: Followed,
    period: int,
    result: views.PeriodResult,
    ranked: Sequence[str],
    lines: Sequence[Mapping[str, Any]],
    ranks: Mapping[str, tuple[int, str]] | None = None,
) -> dict[str, Any]:
    """One period of a node's trend: each line's points, value, status and rank in the node among the
    `ranked` units (`ranks` as a ranking answered them, else competition ranking on the exact points, ties
    sharing a rank), and the median and best of the ranked units' points."""
    everyone = {unit: followed.points(result.scores.get(unit)) or Fraction(0) for unit in ranked}
    if ranks is None:
        ranks = {entry.unit: (entry.rank, entry.label) for entry in rank_units(everyone)}
    ordered = sorted(everyone.values())
    shown = []
    for line in lines:
        unit = line["unit_id"]
        score = result.scores.get(unit)
        measured = score.indicators.get(followed.code) if score is not None else None
        rank, label = ranks.get(unit, (None, None))
        names = {key: line.get(key) for key in NAMES} if line.get("unit_name_vi") else result.names(unit)
        shown.append(
            {
                "unit_id": unit,
                **names,
                "relation": line["relation"],
                "points": _shown(followed.points(score)),
                "value": _shown(measured.value) if measured is not None and measured.value is not None else None,
                "status": measured.status if measured is not None else None,
                "rank": rank,
                "rank_label": label,
            }
        )
    return {
        "period": period,
        "units_ranked": len(ordered),
        "peer_median": _shown(statistics.median(ordered)) if ordered else None,
        "peer_best": _shown(ordered[-1]) if ordered else None,
        "lines": shown,
    }


async def period_scores(reporting: Reporting, scope: Scope) -> tuple[views.PeriodResult, list[str]]:
    """Every unit's scores of a period as the scorecards read them, and the units the period ranks: a
    publication as `reports.scorecard` reads it (the stage it froze, at the sequence it froze, its own
    units), another stage now."""
    if scope.stage == "published":
        published = await reports.publication(reporting, scope, None, None, None)
        read = scope.at_stage(published["published_stage"])
        result = await reports.result(reporting, read, AsOf(sequence=published["as_of_sequence"]), full=True)
        return result, [row["unit_id"] for row in published["rankings"]]
    result = await reports.result(reporting, scope, None, full=True)
    return result, [ranked.unit for ranked in result.ranking]


async def node_trend(reporting: Reporting, followed: Followed, trend: dict[str, Any]) -> dict[str, Any]:
    """A node over the periods and lines of `trend` (`reports.trend`'s answer). The total's and a pillar's
    ranks are the API's own rankings' (`/v1/rankings`, `pillar=`; a publication's as it froze them); a
    component's are the same rule on its points."""
    periods = []
    for point in trend["periods"]:
        scope = Scope(trend["catalogue"], trend["version"], point["period"], trend["stage"])
        result, ranked = await period_scores(reporting, scope)
        ranks = None
        if followed.ranked_as is not None:
            ranking = await reports.rankings(reporting, scope, None, followed.ranked_as or None, None)
            ranks = {row["unit_id"]: (row["rank"], row["rank_label"]) for row in ranking["rankings"]}
        periods.append(period_figures(followed, point["period"], result, ranked, point["lines"], ranks))
    return {**followed.header(), "periods": periods}


async def unit_trend(
    reporting: Reporting, catalogue_id: str, version: str, stage: str, unit: str, code: str | None
) -> dict[str, Any]:
    """`reports.trend`, and with a `code` the trend of that node (`indicator`); the code is checked first."""
    followed = None
    if code is not None:
        async with reporting.service.sessions() as session:
            catalogue = await reporting.catalogues.get(session, catalogue_id, version)
        if catalogue is None:
            raise Problem(404, "Not found", f"catalogue {catalogue_id} version {version} is not known here")
        followed = follow(catalogue, code)
    trend = await reports.trend(reporting, catalogue_id, version, stage, unit)
    if followed is not None:
        trend["indicator"] = await node_trend(reporting, followed, trend)
    return trend
