"""Rankings and scorecards from the scores the scoring service computed (reporting never scores).

Results are memoised per scope and position (how far the scores answer): new scores move the
position, so a cached answer is never stale.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.as_of import AsOf
from kpi_common.catalogue_store import CatalogueStore, PeerGroupStore
from kpi_common.problems import Problem
from kpi_common.tracking import TrackedProjection
from kpi_core.assessment import units_of_period
from kpi_core.catalogue import Catalogue, Node
from kpi_core.ranking import Ranked, rank_units
from kpi_core.scope import Scope
from kpi_core.score_events import TOTAL_CODE
from kpi_core.scoring import UnitScore, display_points, unit_score_of
from kpi_core.units import Unit
from kpi_reporting.score_reading import reported_units, unit_scores
from kpi_reporting.service_layer.score_projection import answers_through


@dataclass(frozen=True)
class PeriodResult:
    catalogue: Catalogue
    position: int
    scores: dict[str, UnitScore]
    ranking: list[Ranked]
    units: dict[str, Unit] = field(default_factory=dict)  # the peer group's units of the period, by id
    reported: frozenset[str] = frozenset()  # units with a measurement of theirs in the scores

    def names(self, unit_id: str) -> dict[str, str | None]:
        unit = self.units.get(unit_id)
        return {
            "unit_name_vi": unit.name_vi if unit else None,
            "unit_name_en": unit.name_en if unit else None,
            "unit_code": unit.code if unit else None,
        }


class ResultCache:
    def __init__(self, size: int = 64) -> None:
        self._entries: OrderedDict[tuple[Any, ...], PeriodResult] = OrderedDict()
        self._size = size

    def get(self, key: tuple[Any, ...]) -> PeriodResult | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: tuple[Any, ...], result: PeriodResult) -> None:
        self._entries[key] = result
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


def _number(points: Fraction | None) -> str | None:
    shown = display_points(points)
    return str(shown) if shown is not None else None


async def period_result(
    session: AsyncSession,
    catalogues: CatalogueStore,
    peer_groups: PeerGroupStore,
    tracking: TrackedProjection,
    cache: ResultCache,
    scope: Scope,
    as_of: AsOf | None = None,
    *,
    full: bool = False,
) -> PeriodResult:
    """The period's scores and ranking; by default each unit's total and pillars only (what a
    ranking shows), every score with `full`. The position is how far both the scores and the
    log's own events (measurements, workflow) are applied here: what the answer is complete for."""
    catalogue = await catalogues.get(session, scope.catalogue_id, scope.version)
    if catalogue is None:
        raise Problem(404, "Not found", f"catalogue {scope.catalogue_id} version {scope.version} is not known here")
    answered, applied = await answers_through(session), await tracking.position(session)
    position = min(answered, applied)
    # the scores may run ahead of the log's own events: then they are read as of the position
    moment = as_of if as_of is not None or answered <= applied else AsOf(sequence=position)
    if as_of is not None and as_of.sequence is not None:
        position = min(position, as_of.sequence)
        moment = AsOf(sequence=position)
    key = (scope, position, as_of, full)
    cached = cache.get(key)
    if cached is not None:
        return cached
    codes = None if full else [TOTAL_CODE, *(root.code for root in catalogue.roots if root.scored)]
    scores, last = await unit_scores(session, catalogue, scope, moment, codes=codes)
    if as_of is not None and as_of.recorded_at is not None:
        position = last
    # who is ranked: the peer group's units of the period, as registered at this moment
    registry = await peer_groups.registry(session, position)
    members = units_of_period(registry, catalogue, scope.period)
    if registry.group(catalogue.peer_group) is not None:
        scores = {unit.id: scores.get(unit.id) or unit_score_of(catalogue, unit.id, {}, {}, None) for unit in members}
    result = PeriodResult(
        catalogue,
        position,
        scores,
        rank_units({unit: score.total for unit, score in scores.items()}),
        {unit.id: unit for unit in members},
        frozenset(await reported_units(session, scope, moment)),
    )
    cache.put(key, result)
    return result


async def unit_score(
    session: AsyncSession, catalogue: Catalogue, scope: Scope, unit: str, position: int
) -> UnitScore | None:
    """One unit's every score as it stood at `position` (None when it has none)."""
    scores, _ = await unit_scores(session, catalogue, scope, AsOf(sequence=position), units=[unit])
    return scores.get(unit)


def rankings_view(result: PeriodResult, scope: Scope, pillar: str | None = None) -> dict[str, Any]:
    """The ranking by total, or by one pillar's points (`pillar`)."""
    catalogue = result.catalogue
    if catalogue.kind != "points":
        raise Problem(
            422,
            "No points to rank",
            f"{catalogue.id} is a KPI set: its indicators have values, not points; read them on the units' scorecards",
            [{"field": "catalogue", "message": "a KPI set has no ranking"}],
        )
    pillars = [root for root in catalogue.roots if root.scored]
    ranking = result.ranking
    if pillar is not None:
        if pillar not in {p.code for p in pillars}:
            raise Problem(
                422,
                "Unknown pillar",
                f"{catalogue.id} has no scored pillar {pillar}",
                [{"field": "pillar", "message": pillar}],
            )
        ranking = rank_units(
            {unit: score.node_points.get(pillar, Fraction(0)) for unit, score in result.scores.items()}
        )
    return {
        "catalogue": scope.catalogue_id,
        "version": scope.version,
        "period": scope.period,
        "stage": scope.stage,
        "pillar": pillar,
        "as_of_sequence": result.position,
        "max_points": _number(Fraction(catalogue.total_max_points)) if catalogue.total_max_points is not None else None,
        "pillars": [
            {"code": p.code, "name_vi": p.name_vi, "name_en": p.name_en, "max_points": str(p.max_points)}
            for p in pillars
        ],
        "rankings": [
            {
                "rank": ranked.rank,
                "rank_label": ranked.label,
                "unit_id": ranked.unit,
                **result.names(ranked.unit),
                "status": "reported" if ranked.unit in result.reported else "missing",
                "total": _number(result.scores[ranked.unit].total),
                "pillars": {p.code: _number(result.scores[ranked.unit].node_points.get(p.code)) for p in pillars},
            }
            for ranked in ranking
        ],
    }


@dataclass(frozen=True)
class CardContext:
    """What a scorecard shows beside the unit's own scores."""

    other_stage: UnitScore | None = None
    previous_period: UnitScore | None = None
    verifications: dict[str, dict[str, Any]] = field(default_factory=dict)


def scorecard_view(
    result: PeriodResult,
    scope: Scope,
    unit: str,
    unit_score: UnitScore | None,
    context: CardContext,
    general_information: dict[str, Any],
) -> dict[str, Any]:
    if unit not in result.scores:
        raise Problem(
            404,
            "Not found",
            f"unit {unit} is not assessed in this catalogue version and period "
            f"(the peer group {result.catalogue.peer_group} has {len(result.units)} units then)",
        )
    ranked = next(entry for entry in result.ranking if entry.unit == unit)
    catalogue = result.catalogue
    score = unit_score or unit_score_of(catalogue, unit, {}, {}, None)
    return {
        "unit_id": unit,
        **result.names(unit),
        "catalogue": scope.catalogue_id,
        "version": scope.version,
        "period": scope.period,
        "stage": scope.stage,
        "as_of_sequence": result.position,
        "total": _number(score.total),
        "max_points": str(catalogue.total_max_points) if catalogue.total_max_points is not None else None,
        "rank": ranked.rank,
        "rank_label": ranked.label,
        "previous_period_total": _number(context.previous_period.total) if context.previous_period else None,
        "general_information": general_information,
        "pillars": [_node_card(catalogue, score, root, scope.stage, context) for root in catalogue.roots],
    }


def _node_card(catalogue: Catalogue, score: UnitScore, node: Node, stage: str, context: CardContext) -> dict[str, Any]:
    card: dict[str, Any] = {
        "code": node.code,
        "name_vi": node.name_vi,
        "name_en": node.name_en,
        "max_points": str(node.max_points) if node.max_points is not None else None,
        "scored": node.scored,
        "lead_agency": node.lead_agency,
        "cooperating_agencies": list(node.cooperating_agencies),
        "deadline": node.deadline,
    }
    points = score.node_points.get(node.code) if node.scored else None
    indicator = score.indicators.get(node.code)
    card["points"] = _number(points)
    card["status"] = _status(indicator.status, stage) if indicator is not None else None
    if node.level == "data_line" and node.parent is not None:
        # a data line is one input of its parent, reported with it: show the value it carries
        parent = score.indicators.get(node.parent)
        name = node.code.rsplit(".", 1)[-1]
        value = parent.inputs.get(name) if parent is not None else None
        card["value"] = value if value is None or isinstance(value, bool) else str(value)
    if points is not None and node.max_points is not None:
        card["points_missing"] = _number(Fraction(node.max_points) - points)
    if indicator is not None:
        card |= {
            "inputs": {
                name: value if isinstance(value, bool) else str(value) for name, value in indicator.inputs.items()
            },
            "value": _number(indicator.value) if indicator.value is not None else None,
            "formula": indicator.formula,
            "event_id": indicator.event_id,
        }
        if node.code in context.verifications:
            card["verification"] = context.verifications[node.code]
    if context.other_stage is not None and node.scored:
        other = context.other_stage.node_points.get(node.code)
        self_points, verified = (points, other) if stage == "self_assessment" else (other, points)
        card["self_assessed_points"] = _number(self_points)
        card["verified_points"] = _number(verified)
        card["gap"] = _number(verified - self_points) if verified is not None and self_points is not None else None
    if context.previous_period is not None and points is not None:
        before = context.previous_period.node_points.get(node.code)
        card["previous_period_points"] = _number(before)
        card["change"] = _number(points - before) if before is not None else None
    kids = catalogue.children_of(node.code)
    if kids:
        card["children"] = [_node_card(catalogue, score, kid, stage, context) for kid in kids]
    return card


def _status(status: str, stage: str) -> str:
    """Not applicable is a unit's claim in the self-assessment and the evaluator's acceptance in the verification."""
    if status == "not_applicable":
        return "not_applicable_claimed" if stage == "self_assessment" else "not_applicable_accepted"
    return status


def diff_view(before: PeriodResult, after: PeriodResult, events: list[dict[str, Any]]) -> dict[str, Any]:
    """What changed between two moments: ranks, every score that moved, and the events in between."""
    ranks_before = {ranked.unit: ranked for ranked in before.ranking}
    ranks_after = {ranked.unit: ranked for ranked in after.ranking}
    ranks = []
    for unit in sorted(set(ranks_before) | set(ranks_after)):
        old, new = ranks_before.get(unit), ranks_after.get(unit)
        if old is None or new is None or (old.rank, old.of, old.total) != (new.rank, new.of, new.total):
            ranks.append(
                {
                    "unit_id": unit,
                    "from": {"rank_label": old.label, "total": _number(old.total)} if old else None,
                    "to": {"rank_label": new.label, "total": _number(new.total)} if new else None,
                }
            )
    scores = []
    for unit in sorted(set(before.scores) | set(after.scores)):
        old_points = before.scores[unit].node_points if unit in before.scores else {}
        new_points = after.scores[unit].node_points if unit in after.scores else {}
        for code in sorted(set(old_points) | set(new_points)):
            if old_points.get(code) != new_points.get(code):
                scores.append(
                    {
                        "unit_id": unit,
                        "code": code,
                        "from": _number(old_points.get(code)),
                        "to": _number(new_points.get(code)),
                    }
                )
    return {
        "from_sequence": before.position,
        "to_sequence": after.position,
        "ranks": ranks,
        "scores": scores,
        "events": [event for event in events if before.position < event["sequence"] <= after.position],
    }


def changes_since(
    current: dict[str, Any], previous: dict[str, Any] | None, predecessors: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """Each ranked unit's change since the previous period's ranking of the same kind (total, or the
    pillar ranked by): its rank then, the places gained (positive) or lost, and the points moved.
    A unit that was not ranked then (one created by a merger) is compared with nobody: the rows of the
    units that stood for it (`predecessors`, from the registry) are named instead, each with its own
    figures, never summed."""
    if previous is None:
        return {}
    pillar = current.get("pillar")

    def points(row: dict[str, Any]) -> str | None:
        found: str | None = row["pillars"].get(pillar) if pillar else row["total"]
        return found

    before = {row["unit_id"]: row for row in previous["rankings"]}
    changes: dict[str, dict[str, Any]] = {}
    for row in current["rankings"]:
        old = before.get(row["unit_id"])
        if old is None:
            changes[row["unit_id"]] = {
                "predecessors": [
                    {key: before[unit].get(key) for key in ("unit_id", "unit_name_vi", "unit_name_en", "rank_label")}
                    | {"points": points(before[unit])}
                    for unit in predecessors.get(row["unit_id"], [])
                    if unit in before
                ]
            }
            continue
        now, then = points(row), points(old)
        changes[row["unit_id"]] = {
            "previous_rank_label": old["rank_label"],
            "previous_points": then,
            "rank_change": old["rank"] - row["rank"],
            "points_change": _number(Fraction(now) - Fraction(then)) if now is not None and then is not None else None,
        }
    return changes


def points_to_gain(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Where the points are: every component of a scorecard still short of its max (the most points
    missing first), with who is responsible; a component whose parts are listed is not listed again.
    A pillar short of its max with no part short (no parts, or parts without points) is listed itself."""

    def short(node: dict[str, Any]) -> bool:
        return node.get("points_missing") is not None and Fraction(node["points_missing"]) > 0

    found: list[dict[str, Any]] = []

    def walk(nodes: list[dict[str, Any]], pillar: dict[str, Any] | None) -> None:
        for node in nodes:
            kids = node.get("children", [])
            if any(short(kid) for kid in kids):
                walk(kids, pillar or node)
            elif short(node):
                shown = {key: value for key, value in node.items() if key != "children"}
                found.append({**shown, "pillar": (pillar or node)["code"]})

    walk(card["pillars"], None)
    return sorted(found, key=lambda node: (-Fraction(node["points_missing"]), node["code"]))
