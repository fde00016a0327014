"""Applying events to the score projection: only the scores an event can change are rewritten.

A measurement changes its indicator and that indicator's ancestors for its unit. When the
indicator is peer-relative, it changes that indicator (and ancestors) for every unit of the
same catalogue version, period and stage. Every score that changed is handed to the score log
(`score_log.ScoreLog`), and a publication's ranking is frozen from the scores as they stand when
its event is applied: exactly the scores of every event before it.

Two ways of applying, one result. Live, each measurement rescores what it changed at once, so
every score line carries the exact event that changed it (what `as_of` reads). In a replay of
events the score log has already published (a rebuild), the lines and their lineage exist:
measurements are only folded in, the scores they touch are marked, and each marked unit is scored
once, when the batch ends or a publication needs the scores as they stand (`_settle`). The rows
written are the same: the same codes, each with the last event that touched it, with the points
of the same inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.auth import KeyStore
from kpi_common.catalogue_store import CatalogueStore, PeerGroupStore
from kpi_common.db import insert_ignoring_duplicates, upsert
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
from kpi_core.scope import Scope
from kpi_core.score_events import TOTAL_CODE, ResultFrozen
from kpi_core.scoring import (
    IndicatorScore,
    MeasuredValues,
    PeerStats,
    UnitScore,
    display_points,
    peer_stats,
    peer_stats_after,
    rescore_leaf,
    score_unit,
    with_peer_events,
    with_previous_period,
)
from kpi_scoring.adapters.orm import frozen_results, measurements, score_changes, scores
from kpi_scoring.service_layer.score_log import ScoreLog, score_line, shown_inputs

PeriodInputs = dict[str, dict[str, RecordedInputs]]
MAX_CACHED_PERIODS = 64  # periods (catalogue version × period × stage) kept in memory between batches
MAX_MEASURED_VALUES = 100_000  # peer-relative inputs whose measured value is kept between measurements


@dataclass(frozen=True)
class _Replaced:
    """The unit's measurement of the indicator that a measurement replaced (None: it is the first)."""

    measurement: RecordedInputs | None


@dataclass
class _Unsettled:
    """What replayed measurements touched in one scope and is not scored yet."""

    catalogue: Catalogue
    scope: Scope
    rows: dict[tuple[str, str], int] = field(default_factory=dict)  # (unit, code) -> the last event touching it
    leaves: dict[str, set[str]] = field(default_factory=dict)  # unit -> the leaves to score again
    # a peer-relative leaf touches every unit of the period: leaf -> (the last event measuring it, how
    # many units the period had then: the first ones of the period's units, which only ever grow)
    peer_leaves: dict[str, tuple[int, int]] = field(default_factory=dict)

    def spread(self, units: list[str], catalogue: Catalogue) -> None:
        """What the peer-relative leaves touched, on each unit the period had when they did."""
        for leaf, (sequence, count) in self.peer_leaves.items():
            codes = _with_ancestors(catalogue, leaf)
            rows = self.rows
            for unit in units[:count]:
                self.leaves.setdefault(unit, set()).add(leaf)
                for code in codes:
                    if rows.get((unit, code), 0) < sequence:
                        rows[(unit, code)] = sequence
        self.peer_leaves = {}


class _TransactionInputs:
    """What a batch reads and writes, kept in memory for its one transaction (nothing else writes
    these rows meanwhile): the inputs and scores of the periods it touches, read once, and the rows
    it changed, written once at the end of the batch (`flush`)."""

    def __init__(self) -> None:
        self._session: AsyncSession | None = None
        self._committed_through: int | None = None
        self._finished_through: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._periods: dict[Scope, PeriodInputs] = {}
        self.scores: dict[tuple[Scope, str], UnitScore] = {}  # (scope, unit) -> the unit's score as it stands
        self.stored: dict[Scope, dict[tuple[str, str], str | None]] = {}  # scope -> (unit, code) -> points
        self.peers: dict[Scope, dict[str, PeerStats | None]] = {}  # scope -> peer-relative code -> stats
        self.pending_measurements: dict[tuple[Scope, str, str], dict[str, Any]] = {}  # (scope, unit, indicator)
        self.pending_scores: dict[tuple[Scope, str, str], dict[str, Any]] = {}  # (scope, unit, code)
        self.pending_changes: list[dict[str, Any]] = []
        self.unsettled: dict[Scope, _Unsettled] = {}  # scope -> what a replay folded in, unscored
        self.measured: MeasuredValues = {}  # each peer-relative input's measured value, for `peer_stats`

    def _current(self, session: AsyncSession) -> None:
        if session is not self._session:  # a new transaction (or a retry after a rollback): read afresh
            self._session = session
            self._reset()

    def begin(self, session: AsyncSession, first_sequence: int) -> None:
        """A batch starts. What the last batch left is still true when it committed and this batch
        goes straight on from it (no other instance applied events between): keep it, read nothing
        again; else read afresh."""
        if session is self._session:
            return
        goes_on = self._committed_through is not None and first_sequence == self._committed_through + 1
        self._session = session
        if not goes_on or len(self._periods) > MAX_CACHED_PERIODS:
            self._reset()
        self.pending_measurements, self.pending_scores, self.pending_changes = {}, {}, []
        self.unsettled = {}
        self._committed_through = None

    def finished(self, last_sequence: int) -> None:
        self._finished_through = last_sequence

    def committed(self) -> None:
        self._committed_through = self._finished_through

    async def period(self, session: AsyncSession, catalogue: Catalogue, scope: Scope) -> PeriodInputs:
        self._current(session)
        if scope not in self._periods:
            self._periods[scope] = await _load_inputs(session, catalogue, scope, None)
        return self._periods[scope]

    async def stored_points(self, session: AsyncSession, scope: Scope) -> dict[tuple[str, str], str | None]:
        self._current(session)
        if scope not in self.stored:
            query = select(scores.c.unit_id, scores.c.code, scores.c.points_exact).where(
                *(scores.c[name] == value for name, value in scope.columns().items())
            )
            self.stored[scope] = {(row.unit_id, row.code): row.points_exact for row in await session.execute(query)}
        return self.stored[scope]

    async def flush(self, session: AsyncSession) -> None:
        self._current(session)
        scope_columns = ["catalogue_id", "version", "period", "stage", "unit_id"]
        await upsert(session, measurements, list(self.pending_measurements.values()), key=[*scope_columns, "indicator"])
        await upsert(session, scores, list(self.pending_scores.values()), key=[*scope_columns, "code"])
        await insert_ignoring_duplicates(session, score_changes, self.pending_changes)
        self.pending_measurements, self.pending_scores, self.pending_changes = {}, {}, []


class ScoreProjection:
    def __init__(self, catalogues: CatalogueStore, peer_groups: PeerGroupStore, keys: KeyStore, log: ScoreLog) -> None:
        self.catalogues = catalogues
        self.peer_groups = peer_groups
        self.keys = keys
        self.log = log
        self.on_commit: Callable[[], None] | None = None  # e.g. wake the score relay
        self._inputs = _TransactionInputs()

    async def finish_batch(self, session: AsyncSession, last_sequence: int) -> None:
        """The batch's rows, written once, then its score events."""
        await self._settle(session)
        await self._inputs.flush(session)
        await self.log.finish_batch(session, last_sequence)
        self._inputs.finished(last_sequence)

    def committed(self) -> None:
        """After the batch's commit: what it left in memory is the truth (see `_TransactionInputs.begin`)."""
        self._inputs.committed()
        if self.on_commit is not None:
            self.on_commit()

    async def apply(self, session: AsyncSession, envelope: EventEnvelope) -> None:
        self._inputs.begin(session, envelope.sequence)
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
        await self._settle(session)
        await self._inputs.flush(session)  # the scores as they stand, in the table the ranking reads
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
        scope = Scope(event.catalogue_id, event.catalogue_version, event.period, event.stage)
        query = select(scores.c.unit_id, scores.c.code, scores.c.points_exact).where(
            *(scores.c[name] == value for name, value in scope.columns().items()),
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
        scope = Scope(event.catalogue_id, event.catalogue_version, event.period, event.stage)
        period = await self._inputs.period(session, catalogue, scope)
        in_order = dict(sorted(event.inputs.items()))  # as stored (sorted keys), so as read back after
        self._inputs.pending_measurements[(scope, event.unit_id, event.indicator)] = {
            **scope.columns(),
            "unit_id": event.unit_id,
            "indicator": event.indicator,
            "inputs": json.dumps(in_order),
            "not_applicable_reason": event.not_applicable_reason,
            "event_id": envelope.id,
            "sequence": envelope.sequence,
        }
        node = catalogue.node(event.indicator)
        replaced = _Replaced(period.get(event.unit_id, {}).get(event.indicator))
        period.setdefault(event.unit_id, {})[event.indicator] = RecordedInputs(
            event.indicator,
            typed_inputs(node, in_order),
            envelope.id,
            envelope.sequence,
            event.not_applicable_reason,
        )
        published = envelope.sequence <= await self.log.published_through(session)
        rescore = self._fold if published else self._rescore
        await rescore(session, catalogue, scope, event.unit_id, event.indicator, envelope, replaced)
        if node is not None and isinstance(node.rule, YearOverYearRule) and node.rule.previous is not None:
            following = scope.following()  # next year's score reads this year's value
            next_year = await self._inputs.period(session, catalogue, following)
            peer_codes = {leaf.code for leaf in catalogue.leaves() if is_peer_relative(leaf.rule)}
            if next_year.get(event.unit_id) or any(peer_codes & set(inputs) for inputs in next_year.values()):
                await rescore(session, catalogue, following, event.unit_id, event.indicator, envelope)

    async def _touched(
        self, session: AsyncSession, catalogue: Catalogue, scope: Scope, unit: str, indicator: str
    ) -> tuple[list[str], tuple[str, ...]]:
        """The units and codes one measurement can change: its indicator and ancestors, for its unit
        or, when the indicator is peer-relative, for every unit of the period that has inputs."""
        node = catalogue.node(indicator)
        every_unit = await self._inputs.period(session, catalogue, scope)
        everyone = node is not None and is_peer_relative(node.rule)
        return (sorted(every_unit) if everyone else [unit]), _with_ancestors(catalogue, indicator)

    async def _fold(
        self,
        session: AsyncSession,
        catalogue: Catalogue,
        scope: Scope,
        unit: str,
        indicator: str,
        envelope: EventEnvelope,
        replaced: _Replaced | None = None,
    ) -> None:
        """Replay: mark what the measurement touched (its leaf and ancestors, for its unit or, for a
        peer-relative leaf, for every unit of the period so far: spread when settled); `_settle`
        scores it."""
        unsettled = self._inputs.unsettled.get(scope)
        if unsettled is None:
            unsettled = self._inputs.unsettled[scope] = _Unsettled(catalogue, scope)
        node = catalogue.node(indicator)
        if node is not None and is_peer_relative(node.rule):
            every_unit = await self._inputs.period(session, catalogue, scope)
            unsettled.peer_leaves[indicator] = (envelope.sequence, len(every_unit))
            return
        unsettled.leaves.setdefault(unit, set()).add(indicator)
        rows, sequence = unsettled.rows, envelope.sequence
        for code in _with_ancestors(catalogue, indicator):
            rows[(unit, code)] = sequence

    async def _settle(self, session: AsyncSession) -> None:
        """Score what a replayed batch touched: each touched leaf of a unit once, from the inputs as
        they stand (a unit not scored yet in this run: all of it, once)."""
        for scope, unsettled in self._inputs.unsettled.items():
            catalogue = unsettled.catalogue
            every_unit = await self._inputs.period(session, catalogue, scope)
            period_inputs = every_unit
            if _uses_previous_period(catalogue):
                earlier = await self._inputs.period(session, catalogue, scope.previous())
                period_inputs = with_previous_period(catalogue, every_unit, earlier)
            peers = self._inputs.peers[scope] = _all_peers(catalogue, period_inputs)
            unsettled.spread(list(every_unit), catalogue)
            for unit, leaves in unsettled.leaves.items():
                unit_inputs, before = period_inputs.get(unit, {}), self._inputs.scores.get((scope, unit))
                if before is None:
                    unit_score = score_unit(catalogue, unit, unit_inputs, peers)
                else:
                    unit_score = before
                    for leaf in sorted(leaves):
                        unit_score = rescore_leaf(catalogue, unit_score, leaf, unit_inputs.get(leaf), peers.get(leaf))
                self._inputs.scores[(scope, unit)] = unit_score
            stored = await self._inputs.stored_points(session, scope)
            for (unit, code), sequence in unsettled.rows.items():
                (row,) = _score_rows(catalogue, self._inputs.scores[(scope, unit)], [code], scope, sequence)
                stored[(unit, code)] = row["points_exact"]
                self._inputs.pending_scores[(scope, unit, code)] = row
        self._inputs.unsettled = {}

    async def _rescore(
        self,
        session: AsyncSession,
        catalogue: Catalogue,
        scope: Scope,
        unit: str,
        indicator: str,
        envelope: EventEnvelope,
        replaced: _Replaced | None = None,
    ) -> None:
        """Rewrite the scores one measurement can change: its indicator and ancestors, for its unit or,
        when the indicator is peer-relative, for every unit of the period. `replaced`, when known, is
        the unit's measurement of the indicator that this one replaced in the scope."""
        if self._inputs.unsettled:  # a batch that goes on past what was published: the folded part first
            await self._settle(session)
        sequence, recorded_at = envelope.sequence, _time_text(envelope.time)
        node = catalogue.node(indicator)
        everyone = node is not None and is_peer_relative(node.rule)
        every_unit = await self._inputs.period(session, catalogue, scope)
        scored_units, affected = await self._touched(session, catalogue, scope, unit, indicator)
        period_inputs = every_unit
        if _uses_previous_period(catalogue):
            earlier = await self._inputs.period(session, catalogue, scope.previous())
            period_inputs = with_previous_period(catalogue, every_unit, earlier)
        peers = self._inputs.peers.get(scope)
        peers_before = peers is not None  # else the stats below already include this event
        if peers is None:
            peers = self._inputs.peers[scope] = _all_peers(catalogue, period_inputs)
        peer, peer_moved, values_moved = None, True, True
        if node is not None and everyone:
            previous_peer = peers.get(indicator)
            if len(self._inputs.measured) > MAX_MEASURED_VALUES:  # it keeps replaced inputs alive too
                self._inputs.measured.clear()
            recorded = every_unit[unit][indicator]
            if peers_before and previous_peer is not None and replaced is not None and period_inputs is every_unit:
                peer = peer_stats_after(
                    previous_peer, node, period_inputs, replaced.measurement, recorded, self._inputs.measured
                )
            else:
                peer = peer_stats(node, period_inputs, self._inputs.measured)
            peers[indicator] = peer
            peer_moved = not peers_before or _extremes(peer) != _extremes(previous_peer)
            values_moved = not peers_before or peer != previous_peer  # `PeerStats` equality: the values alone
        rows, pending = [], self._inputs.pending_scores
        for scored_unit in scored_units:
            key = (scope, scored_unit)
            before = self._inputs.scores.get(key)
            unit_inputs = period_inputs.get(scored_unit, {})
            if before is None:  # the first time in this transaction: the whole unit, once
                unit_score = score_unit(catalogue, scored_unit, unit_inputs, peers)
            elif scored_unit != unit and not peer_moved:
                # another unit's inputs are as they were and so are the peers' extremes it is scored
                # against (values and the events that set them): its score is the one it has, and
                # rows written for it in this batch say so already (each score that moved rewrote
                # its rows): they only take this event's sequence
                if _restamped(pending, scope, scored_unit, affected, sequence):
                    continue
                unit_score = before
            elif (
                scored_unit != unit
                and not values_moved
                and peer is not None
                and (repointed := with_peer_events(before, indicator, peer)) is not None
            ):
                # other events hold the extremes, at the same values (most corrections of a peer group
                # measured alike): the unit's points are the ones it has, its explanation names them;
                # the leaf's ancestors are sums of the same points, their rows only take this sequence
                unit_score = repointed
                if _restamped(pending, scope, scored_unit, affected[1:], sequence):
                    self._inputs.scores[key] = unit_score
                    rows += _score_rows(catalogue, unit_score, affected[:1], scope, sequence)
                    continue
            else:  # then only the leaf that changed, its ancestors and the total
                unit_score = rescore_leaf(catalogue, before, indicator, unit_inputs.get(indicator), peer)
            self._inputs.scores[key] = unit_score
            rows += _score_rows(catalogue, unit_score, affected, scope, sequence)
        stored = await self._inputs.stored_points(session, scope)
        changed, changes = _changes(scope, rows, stored, sequence, recorded_at)
        self._inputs.pending_changes += changes
        for row in rows:
            stored[(row["unit_id"], row["code"])] = row["points_exact"]
            pending[(scope, row["unit_id"], row["code"])] = row
        scores = self._inputs.scores
        self.log.changed(
            session,
            (
                score_line(row, scores[(scope, row["unit_id"])].indicators.get(row["code"]), recorded_at)
                for row in changed
            ),
        )


def _restamped(
    pending: dict[tuple[Scope, str, str], dict[str, Any]],
    scope: Scope,
    unit: str,
    codes: tuple[str, ...],
    sequence: int,
) -> bool:
    """The unit's rows for these codes, as this batch wrote them, now carrying `sequence`; False
    (and nothing changed) when the batch has not written all of them."""
    kept = [row for code in codes if (row := pending.get((scope, unit, code))) is not None]
    if len(kept) != len(codes):
        return False
    for row in kept:
        pending[(scope, unit, row["code"])] = {**row, "sequence": sequence}
    return True


@lru_cache(maxsize=1024)
def _time_text(moment: datetime) -> str:
    """An event's time as the score tables write it; the events of a set share theirs (one
    transaction), and `strftime` was a fortieth of the live path."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _changes(
    scope: Scope,
    rows: list[dict[str, Any]],
    before: dict[tuple[str, str], str | None],
    sequence: int,
    recorded_at: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Lineage: which scores this event changed, from what to what: the changed rows and the change rows."""
    columns = scope.columns()
    changed = []
    for row in rows:
        key = (row["unit_id"], row["code"])
        if key not in before or before[key] != row["points_exact"]:
            changed.append(row)
    changes = [
        {
            **columns,
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
    return changed, changes


def _extremes(peer: PeerStats | None) -> tuple[object, ...] | None:
    """What other units' scores and explanations of a peer-relative leaf depend on: the extremes'
    values and the events that set them (`PeerStats` equality leaves the events out)."""
    if peer is None:
        return None
    return peer.minimum, peer.maximum, peer.minimum_event_id, peer.maximum_event_id


def _all_peers(catalogue: Catalogue, period_inputs: PeriodInputs) -> dict[str, PeerStats | None]:
    return {leaf.code: peer_stats(leaf, period_inputs) for leaf in catalogue.leaves() if is_peer_relative(leaf.rule)}


_PREVIOUS_PERIOD: dict[tuple[str, str], bool] = {}


def _uses_previous_period(catalogue: Catalogue) -> bool:
    key = (catalogue.id, catalogue.version)
    if key not in _PREVIOUS_PERIOD:
        _PREVIOUS_PERIOD[key] = any(
            isinstance(leaf.rule, YearOverYearRule) and leaf.rule.previous is not None for leaf in catalogue.leaves()
        )
    return _PREVIOUS_PERIOD[key]


async def _load_inputs(
    session: AsyncSession, catalogue: Catalogue, scope: Scope, unit: str | None
) -> dict[str, dict[str, RecordedInputs]]:
    """The latest inputs of one unit (or all units), plus every unit's peer-relative inputs."""
    peer_codes = [leaf.code for leaf in catalogue.leaves() if is_peer_relative(leaf.rule)]
    query = select(measurements).where(*(measurements.c[name] == value for name, value in scope.columns().items()))
    if unit is not None:
        query = query.where(or_(measurements.c.unit_id == unit, measurements.c.indicator.in_(peer_codes)))
    period_inputs: dict[str, dict[str, RecordedInputs]] = {}
    for row in await session.execute(query):
        period_inputs.setdefault(row.unit_id, {})[row.indicator] = recorded_inputs(catalogue, row)
    return period_inputs


def recorded_inputs(catalogue: Catalogue, row: Any) -> RecordedInputs:
    inputs = typed_inputs(catalogue.node(row.indicator), json.loads(row.inputs))
    return RecordedInputs(row.indicator, inputs, row.event_id, row.sequence, row.not_applicable_reason)


_ANCESTORS: dict[tuple[str, str, str], tuple[str, ...]] = {}  # a catalogue version's tree never changes


def _with_ancestors(catalogue: Catalogue, code: str) -> tuple[str, ...]:
    key = (catalogue.id, catalogue.version, code)
    if key not in _ANCESTORS:
        codes = [code]
        node = catalogue.node(code)
        while node is not None and node.parent is not None:
            codes.append(node.parent)
            node = catalogue.node(node.parent)
        _ANCESTORS[key] = (*codes, TOTAL_CODE)
    return _ANCESTORS[key]


def _score_rows(
    catalogue: Catalogue, unit_score: UnitScore, codes: Iterable[str], scope: Scope, sequence: int
) -> list[dict[str, Any]]:
    rows, columns = [], scope.columns()
    for code in codes:
        indicator = unit_score.indicators.get(code)
        status: str
        if indicator is not None:
            status, points, explanation = indicator.status, indicator.points, explanation_json(catalogue, indicator)
            shown_max = _shown(indicator.max_points)
        else:
            status, explanation, shown_max = _sum_row(catalogue, code)
            points = unit_score.total if code == TOTAL_CODE else unit_score.node_points.get(code, Fraction(0))
        rows.append(
            {
                **columns,
                "unit_id": unit_score.unit,
                "code": code,
                "status": status,
                "points_exact": str(points) if points is not None else None,
                "points": _shown(points),
                "max_points": shown_max,
                "explanation": explanation,
                "sequence": sequence,
            }
        )
    return rows


def _shown(points: Fraction | None) -> str | None:
    return str(display_points(points)) if points is not None else None


_SUMS: dict[tuple[str, str, str], tuple[str, str, str | None]] = {}  # a catalogue version's tree never changes


def _sum_row(catalogue: Catalogue, code: str) -> tuple[str, str, str | None]:
    """(status, explanation, max points shown) of a group, a pillar or the total ("*")."""
    key = (catalogue.id, catalogue.version, code)
    if key not in _SUMS:
        if code == TOTAL_CODE:
            max_points = _fraction(catalogue.total_max_points)
            explanation = _sum_json([root.code for root in catalogue.roots if root.scored])
        else:
            node = catalogue.node(code)
            max_points = _fraction(node.max_points if node else None)
            explanation = _sum_json([kid.code for kid in catalogue.children_of(code) if kid.scored])
        _SUMS[key] = "sum", explanation, _shown(max_points)
    return _SUMS[key]


def _fraction(value: Decimal | None) -> Fraction | None:
    return Fraction(value) if value is not None else None


def _json(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, sort_keys=True)


def _sum_json(codes: list[str]) -> str:
    return _json({"sum_of": codes})


_RULES: dict[tuple[str, str, str], tuple[str, str]] = {}  # a catalogue version's rules never change: serialised once
_RULE_SLOT = "\ufffe"  # a noncharacter: the tests give it as an input, where a spliced rule would have been
_quoted = encode_basestring  # a string as json.dumps(..., ensure_ascii=False) writes it


def _fixed_json(catalogue: Catalogue, code: str) -> tuple[str, str]:
    """The parts of a leaf's explanation its catalogue fixes, as JSON: (method_vi, rule)."""
    key = (catalogue.id, catalogue.version, code)
    if key not in _RULES:
        node = catalogue.node(code)
        rule = node.rule.model_dump(mode="json") if node is not None and node.rule is not None else None
        _RULES[key] = _json(node.method_vi if node else None), _json(rule)
    return _RULES[key]


def _text_json(text: str | None) -> str:
    return "null" if text is None else _quoted(text)


def _input_json(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _quoted(str(value))


def explanation_json(catalogue: Catalogue, score: IndicatorScore) -> str:
    """`json.dumps(explain_indicator(...), ensure_ascii=False, sort_keys=True)`, written directly:
    the keys in sorted order, each string through the encoder json.dumps uses, and the parts the
    catalogue fixes (the rule, most of the bytes, and the method) serialised once per catalogue.
    `tests/unit/test_score_explanation.py` holds it to json.dumps byte for byte."""
    method, rule = _fixed_json(catalogue, score.code)
    inputs = score.inputs
    shown_inputs = ", ".join(f"{_quoted(name)}: {_input_json(inputs[name])}" for name in sorted(inputs))
    peer = score.peer
    shown_peer = (
        "null"
        if peer is None
        else f'{{"max": {_quoted(str(peer.maximum))}, "max_event_id": {_text_json(peer.maximum_event_id)}, '
        f'"min": {_quoted(str(peer.minimum))}, "min_event_id": {_text_json(peer.minimum_event_id)}}}'
    )
    value = display_points(score.value) if score.value is not None else None
    return (
        f'{{"event_id": {_text_json(score.event_id)}, "formula": {_text_json(score.formula)}, '
        f'"inputs": {{{shown_inputs}}}, "method_vi": {method}, "peer": {shown_peer}, '
        f'"previous_period_event_id": {_text_json(score.previous_event_id)}, "rule": {rule}, '
        f'"sequence": {"null" if score.sequence is None else int(score.sequence)}, '
        f'"value": {"null" if value is None else _quoted(str(value))}}}'
    )


def explain_indicator(catalogue: Catalogue, score: IndicatorScore) -> dict[str, Any]:
    """How an indicator's points came about: its rule, the inputs and the formula with the numbers."""
    return _explanation(catalogue, score, json.loads(_fixed_json(catalogue, score.code)[1]))


def _explanation(catalogue: Catalogue, score: IndicatorScore, rule: Any) -> dict[str, Any]:
    node = catalogue.node(score.code)
    return {
        "rule": rule,
        "method_vi": node.method_vi if node else None,
        "inputs": shown_inputs(score.inputs),
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
