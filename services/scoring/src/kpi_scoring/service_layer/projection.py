"""Applying events to the score projection: only the scores an event can change are rewritten.

A measurement changes its indicator and that indicator's ancestors for its unit. When the
indicator is peer-relative, it changes that indicator (and ancestors) for every unit of the
same catalogue version, period and stage. Every score that changed is handed to the score log
(`score_log.ScoreLog`), and a publication's ranking is frozen from the scores as they stand when
its event is applied: exactly the scores of every event before it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.auth import KeyStore
from kpi_common.catalogue_store import CatalogueStore, PeerGroupStore
from kpi_common.db import upsert
from kpi_core.assessment import units_of_period
from kpi_core.catalogue import Catalogue
from kpi_core.events import (
    ApiKeyGranted,
    ApiKeyRevoked,
    CatalogueVersionRegistered,
    EventEnvelope,
    MeasurementRecorded,
    PeerGroupRegistered,
    RankedUnit,
    ResultPublished,
    decode_event,
)
from kpi_core.inputs import RecordedInputs, typed_inputs
from kpi_core.ranking import frozen_ranking, rank_moves
from kpi_core.rules import YearOverYearRule, is_peer_relative
from kpi_core.score_events import TOTAL_CODE, ResultFrozen
from kpi_core.scoring import (
    IndicatorScore,
    PeerStats,
    UnitScore,
    display_points,
    peer_stats,
    rescore_leaf,
    score_unit,
    with_previous_period,
)
from kpi_scoring.adapters.orm import frozen_results, measurements, score_changes, scores
from kpi_scoring.service_layer.score_log import ScoreLog, score_line

PeriodInputs = dict[str, dict[str, RecordedInputs]]


class _TransactionInputs:
    """The inputs of the periods a batch touches, read once per transaction and kept current as its
    events apply (a batch is one transaction: nothing else writes these rows meanwhile)."""

    def __init__(self) -> None:
        self._session: AsyncSession | None = None
        self._periods: dict[tuple[Any, ...], PeriodInputs] = {}
        self.scores: dict[tuple[Any, ...], UnitScore] = {}  # (scope..., unit) -> the unit's score as it stands

    def _current(self, session: AsyncSession) -> None:
        if session is not self._session:  # a new transaction (or a retry after a rollback): read afresh
            self._session, self._periods, self.scores = session, {}, {}

    async def period(self, session: AsyncSession, catalogue: Catalogue, scope: dict[str, Any]) -> PeriodInputs:
        self._current(session)
        key = tuple(scope.values())
        if key not in self._periods:
            self._periods[key] = await _load_inputs(session, catalogue, scope, None)
        return self._periods[key]


class ScoreProjection:
    def __init__(
        self, catalogues: CatalogueStore, peer_groups: PeerGroupStore, keys: KeyStore, log: ScoreLog
    ) -> None:
        self.catalogues = catalogues
        self.peer_groups = peer_groups
        self.keys = keys
        self.log = log
        self._inputs = _TransactionInputs()

    async def apply(self, session: AsyncSession, envelope: EventEnvelope) -> None:
        self.log.saw(session, envelope.sequence)
        event = decode_event(envelope)
        if isinstance(event, CatalogueVersionRegistered):
            await self.catalogues.store(session, event)
        elif isinstance(event, PeerGroupRegistered):
            await self.peer_groups.store(session, event, envelope.sequence)
        elif isinstance(event, MeasurementRecorded):
            await self._measurement(session, event, envelope)
        elif isinstance(event, ResultPublished):
            await self._freeze(session, event, envelope)
        elif isinstance(event, ApiKeyGranted | ApiKeyRevoked):
            await self.keys.apply(session, event, envelope.sequence, envelope.time)

    async def _freeze(self, session: AsyncSession, event: ResultPublished, envelope: EventEnvelope) -> None:
        """The publication's ranking: the peer group's units of the period, by the scores as they
        stand now (every event before this one applied, none after). Publications recorded before
        scoring froze rankings carry their own, which is kept as it is."""
        ranking = event.ranking
        if not ranking:
            catalogue = await self.catalogues.get(session, event.catalogue_id, event.catalogue_version)
            if catalogue is None:
                raise LookupError(f"publication for unregistered catalogue {event.catalogue_id}")
            ranking = await self._ranking(session, catalogue, event, envelope.sequence)
        replaced_query = select(frozen_results.c.ranking).where(frozen_results.c.publication_id == event.replaces)
        replaced = await session.scalar(replaced_query) if event.replaces else None
        await upsert(
            session,
            frozen_results,
            [
                {
                    "publication_id": event.publication_id,
                    "catalogue_id": event.catalogue_id,
                    "version": event.catalogue_version,
                    "period": event.period,
                    "publication_sequence": envelope.sequence,
                    "ranking": json.dumps([entry.model_dump(mode="json") for entry in ranking]),
                }
            ],
            key=["publication_id"],
        )
        if event.ranking:
            return
        before = [RankedUnit.model_validate(entry) for entry in json.loads(replaced)] if replaced else []
        self.log.froze(
            session,
            ResultFrozen(
                catalogue_id=event.catalogue_id,
                catalogue_version=event.catalogue_version,
                period=event.period,
                stage=event.stage,
                publication_id=event.publication_id,
                publication_sequence=envelope.sequence,
                as_of_sequence=envelope.sequence - 1,
                ranking=ranking,
                replaces=event.replaces,
                moved=rank_moves(before, ranking) if event.replaces else (),
                answers_through=envelope.sequence,
            ),
        )

    async def _ranking(
        self, session: AsyncSession, catalogue: Catalogue, event: ResultPublished, sequence: int
    ) -> tuple[RankedUnit, ...]:
        pillar_codes = [root.code for root in catalogue.roots if root.scored]
        scope = {
            "catalogue_id": event.catalogue_id,
            "version": event.catalogue_version,
            "period": event.period,
            "stage": event.stage,
        }
        query = select(scores.c.unit_id, scores.c.code, scores.c.points_exact).where(
            *(scores.c[name] == value for name, value in scope.items()),
            scores.c.code.in_([TOTAL_CODE, *pillar_codes]),
        )
        points: dict[str, dict[str, Fraction]] = {}
        for row in await session.execute(query):
            points.setdefault(row.unit_id, {})[row.code] = Fraction(row.points_exact or "0")
        registry = await self.peer_groups.registry(session, sequence)
        if registry.group(catalogue.peer_group) is not None:
            members = [unit.id for unit in units_of_period(registry, catalogue, event.period)]
        else:  # a catalogue with no registered unit list ranks whoever reported
            members = sorted(points)
        totals = {unit: points.get(unit, {}).get(TOTAL_CODE, Fraction(0)) for unit in members}
        return frozen_ranking(totals, {unit: points.get(unit, {}) for unit in members}, pillar_codes)

    async def _measurement(self, session: AsyncSession, event: MeasurementRecorded, envelope: EventEnvelope) -> None:
        catalogue = await self.catalogues.get(session, event.catalogue_id, event.catalogue_version)
        if catalogue is None:
            raise LookupError(f"measurement for unregistered catalogue {event.catalogue_id}@{event.catalogue_version}")
        scope = {
            "catalogue_id": event.catalogue_id,
            "version": event.catalogue_version,
            "period": event.period,
            "stage": event.stage,
        }
        await upsert(
            session,
            measurements,
            [
                {
                    **scope,
                    "unit_id": event.unit_id,
                    "indicator": event.indicator,
                    "inputs": json.dumps(event.inputs, sort_keys=True),
                    "not_applicable_reason": event.not_applicable_reason,
                    "event_id": envelope.id,
                    "sequence": envelope.sequence,
                }
            ],
            key=[*scope, "unit_id", "indicator"],
        )
        period = await self._inputs.period(session, catalogue, scope)
        node = catalogue.node(event.indicator)
        period.setdefault(event.unit_id, {})[event.indicator] = RecordedInputs(
            event.indicator,
            typed_inputs(node, json.loads(json.dumps(event.inputs, sort_keys=True))),
            envelope.id,
            envelope.sequence,
            event.not_applicable_reason,
        )
        await self._rescore(session, catalogue, scope, event.unit_id, event.indicator, envelope)
        if node is not None and isinstance(node.rule, YearOverYearRule) and node.rule.previous is not None:
            following = {**scope, "period": event.period + 1}  # next year's score reads this year's value
            next_year = await self._inputs.period(session, catalogue, following)
            peer_codes = {leaf.code for leaf in catalogue.leaves() if is_peer_relative(leaf.rule)}
            if next_year.get(event.unit_id) or any(peer_codes & set(inputs) for inputs in next_year.values()):
                await self._rescore(session, catalogue, following, event.unit_id, event.indicator, envelope)

    async def _rescore(
        self,
        session: AsyncSession,
        catalogue: Catalogue,
        scope: dict[str, Any],
        unit: str,
        indicator: str,
        envelope: EventEnvelope,
    ) -> None:
        """Rewrite the scores one measurement can change: its indicator and ancestors, for its unit or,
        when the indicator is peer-relative, for every unit of the period."""
        sequence, recorded_at = envelope.sequence, envelope.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        node = catalogue.node(indicator)
        everyone = node is not None and is_peer_relative(node.rule)
        every_unit = await self._inputs.period(session, catalogue, scope)
        scored_units = sorted(every_unit) if everyone else [unit]
        period_inputs = every_unit
        if _uses_previous_period(catalogue):
            earlier = await self._inputs.period(session, catalogue, {**scope, "period": scope["period"] - 1})
            period_inputs = with_previous_period(catalogue, every_unit, earlier)
        peer = peer_stats(node, period_inputs) if node is not None and everyone else None
        affected = _with_ancestors(catalogue, indicator)
        rows = []
        for scored_unit in scored_units:
            key = (*scope.values(), scored_unit)
            before = self._inputs.scores.get(key)
            unit_inputs = period_inputs.get(scored_unit, {})
            if before is None:  # the first time in this transaction: the whole unit, once
                unit_score = score_unit(catalogue, scored_unit, unit_inputs, _all_peers(catalogue, period_inputs))
            else:  # then only the leaf that changed, its ancestors and the total
                unit_score = rescore_leaf(catalogue, before, indicator, unit_inputs.get(indicator), peer)
            self._inputs.scores[key] = unit_score
            rows += _score_rows(catalogue, unit_score, affected, scope, sequence)
        changed = await _record_changes(session, scope, rows, sequence, recorded_at)
        self.log.changed(session, (score_line(row, recorded_at) for row in changed))
        await upsert(session, scores, rows, key=[*scope, "unit_id", "code"])


async def _record_changes(
    session: AsyncSession, scope: dict[str, Any], rows: list[dict[str, Any]], sequence: int, recorded_at: str
) -> list[dict[str, Any]]:
    """Lineage: which scores this event changed, from what to what; returns the changed rows."""
    units = sorted({row["unit_id"] for row in rows})
    codes = sorted({row["code"] for row in rows})
    query = select(scores.c.unit_id, scores.c.code, scores.c.points_exact).where(
        *(scores.c[name] == value for name, value in scope.items()),
        scores.c.unit_id.in_(units),
        scores.c.code.in_(codes),
    )
    before = {(row.unit_id, row.code): row.points_exact for row in await session.execute(query)}
    changed = [
        row
        for row in rows
        if before.get((row["unit_id"], row["code"])) != row["points_exact"]
        or (row["unit_id"], row["code"]) not in before
    ]
    changes = [
        {
            **scope,
            "sequence": sequence,
            "unit_id": row["unit_id"],
            "code": row["code"],
            "points_before": before.get((row["unit_id"], row["code"])),
            "points_after": row["points_exact"],
            "recorded_at": recorded_at,
            "status": row["status"],
            "max_points": row["max_points"],
            "explanation": row["explanation"],
        }
        for row in changed
    ]
    if changes:
        await session.execute(insert(score_changes), changes)
    return changed


def _all_peers(catalogue: Catalogue, period_inputs: PeriodInputs) -> dict[str, PeerStats | None]:
    return {leaf.code: peer_stats(leaf, period_inputs) for leaf in catalogue.leaves() if is_peer_relative(leaf.rule)}


def _uses_previous_period(catalogue: Catalogue) -> bool:
    return any(
        isinstance(leaf.rule, YearOverYearRule) and leaf.rule.previous is not None for leaf in catalogue.leaves()
    )


async def _load_inputs(
    session: AsyncSession, catalogue: Catalogue, scope: dict[str, Any], unit: str | None
) -> dict[str, dict[str, RecordedInputs]]:
    """The latest inputs of one unit (or all units), plus every unit's peer-relative inputs."""
    peer_codes = [leaf.code for leaf in catalogue.leaves() if is_peer_relative(leaf.rule)]
    query = select(measurements).where(*(measurements.c[name] == value for name, value in scope.items()))
    if unit is not None:
        query = query.where(or_(measurements.c.unit_id == unit, measurements.c.indicator.in_(peer_codes)))
    period_inputs: dict[str, dict[str, RecordedInputs]] = {}
    for row in await session.execute(query):
        period_inputs.setdefault(row.unit_id, {})[row.indicator] = recorded_inputs(catalogue, row)
    return period_inputs


def recorded_inputs(catalogue: Catalogue, row: Any) -> RecordedInputs:
    inputs = typed_inputs(catalogue.node(row.indicator), json.loads(row.inputs))
    return RecordedInputs(row.indicator, inputs, row.event_id, row.sequence, row.not_applicable_reason)


def _with_ancestors(catalogue: Catalogue, code: str) -> list[str]:
    codes = [code]
    node = catalogue.node(code)
    while node is not None and node.parent is not None:
        codes.append(node.parent)
        node = catalogue.node(node.parent)
    return [*codes, TOTAL_CODE]


def _score_rows(
    catalogue: Catalogue, unit_score: UnitScore, codes: Iterable[str], scope: dict[str, Any], sequence: int
) -> list[dict[str, Any]]:
    rows = []
    for code in codes:
        indicator = unit_score.indicators.get(code)
        status: str
        if indicator is not None:
            status, points, explanation = indicator.status, indicator.points, explain_indicator(catalogue, indicator)
            max_points = indicator.max_points
        elif code == TOTAL_CODE:
            status, points, max_points = "sum", unit_score.total, _fraction(catalogue.total_max_points)
            explanation = {"sum_of": [root.code for root in catalogue.roots if root.scored]}
        else:
            node = catalogue.node(code)
            status, points = "sum", unit_score.node_points.get(code, Fraction(0))
            max_points = _fraction(node.max_points if node else None)
            explanation = {"sum_of": [kid.code for kid in catalogue.children_of(code) if kid.scored]}
        rows.append(
            {
                **scope,
                "unit_id": unit_score.unit,
                "code": code,
                "status": status,
                "points_exact": str(points) if points is not None else None,
                "points": str(display_points(points)) if points is not None else None,
                "max_points": str(display_points(max_points)) if max_points is not None else None,
                "explanation": json.dumps(explanation, ensure_ascii=False, sort_keys=True),
                "sequence": sequence,
            }
        )
    return rows


def _fraction(value: Decimal | None) -> Fraction | None:
    return Fraction(value) if value is not None else None


def explain_indicator(catalogue: Catalogue, score: IndicatorScore) -> dict[str, Any]:
    node = catalogue.node(score.code)
    rule = node.rule.model_dump(mode="json") if node is not None and node.rule is not None else None
    return {
        "rule": rule,
        "method_vi": node.method_vi if node else None,
        "inputs": {name: value if isinstance(value, bool) else str(value) for name, value in score.inputs.items()},
        "event_id": score.event_id,
        "sequence": score.sequence,
        "value": str(display_points(score.value)) if score.value is not None else None,
        "formula": score.formula,
        "peer": {
            "min": str(score.peer.minimum),
            "max": str(score.peer.maximum),
            "min_event_id": score.peer.minimum_event_id,
            "max_event_id": score.peer.maximum_event_id,
        }
        if score.peer
        else None,
        "previous_period_event_id": score.previous_event_id,
    }
