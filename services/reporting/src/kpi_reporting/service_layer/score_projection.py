"""Applying the score stream: every score line kept in order, the latest of each kept current,
how far the scores answer, and the rankings publications froze."""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.db import insert_ignoring_duplicates, upsert
from kpi_core.events import EventEnvelope
from kpi_core.score_events import ResultFrozen, ScoreLine, ScoresChanged, decode_score_event
from kpi_reporting.adapters.orm import current_scores, first_reports, frozen_results, score_lines, scores_answered

UNIT_KEY = ["catalogue_id", "version", "period", "stage", "unit_id"]
SCORE_KEY = [*UNIT_KEY, "code"]
ANSWERED = "scores"


def _row(line: ScoreLine) -> dict[str, Any]:
    return {
        "catalogue_id": line.catalogue_id,
        "version": line.catalogue_version,
        "period": line.period,
        "stage": line.stage,
        "unit_id": line.unit_id,
        "code": line.code,
        "sequence": line.sequence,
        "recorded_at": line.recorded_at,
        "status": line.status,
        "points": line.points,
        "max_points": line.max_points,
        "event_id": line.event_id,
        "detail": detail_json(line),
    }


def detail(line: ScoreLine) -> dict[str, Any]:
    """What a score line explains beside its points: the value, formula, inputs, peers, previous period."""
    return {
        "value": line.value,
        "formula": line.formula,
        "inputs": line.inputs,
        "previous_period_event_id": line.previous_period_event_id,
        "peer": line.peer.model_dump(mode="json") if line.peer else None,
    }


_quoted = encode_basestring  # a string as json.dumps(..., ensure_ascii=False) writes it


def _text_json(text: str | None) -> str:
    return "null" if text is None else _quoted(text)


def detail_json(line: ScoreLine) -> str:
    """`json.dumps(detail(line), ensure_ascii=False, sort_keys=True)`, written directly (one per score
    line, thousands a batch): the keys in sorted order, each string through json.dumps's encoder.
    `tests/unit/test_detail_bytes.py` holds it to json.dumps byte for byte."""
    inputs = line.inputs
    shown_inputs = ", ".join(
        f"{_quoted(name)}: {('true' if value else 'false') if isinstance(value, bool) else _quoted(value)}"
        for name, value in sorted(inputs.items())
    )
    peer = line.peer
    shown_peer = (
        "null"
        if peer is None
        else f'{{"max": {_quoted(peer.max)}, "max_event_id": {_text_json(peer.max_event_id)}, '
        f'"min": {_quoted(peer.min)}, "min_event_id": {_text_json(peer.min_event_id)}}}'
    )
    return (
        f'{{"formula": {_quoted(line.formula)}, "inputs": {{{shown_inputs}}}, "peer": {shown_peer}, '
        f'"previous_period_event_id": {_text_json(line.previous_period_event_id)}, "value": {_text_json(line.value)}}}'
    )


class ScoreHistoryProjection:
    """Batch-native: a batch's lines, current scores and frozen rankings are gathered as its events
    are applied and written once, at its end (`finish_batch`), in its transaction."""

    def __init__(self) -> None:
        self._session: AsyncSession | None = None
        self._reset()

    def _reset(self) -> None:
        self._lines: list[dict[str, Any]] = []
        self._latest: dict[tuple[Any, ...], dict[str, Any]] = {}  # one row per score: the batch's last line
        self._first_reports: dict[tuple[Any, ...], dict[str, Any]] = {}  # per unit: the batch's first reported line
        self._frozen: list[dict[str, Any]] = []
        self._answers_through = 0

    def _current(self, session: AsyncSession) -> None:
        if session is not self._session:  # a new batch, or its retry after a rollback
            self._session = session
            self._reset()

    async def apply(self, session: AsyncSession, envelope: EventEnvelope) -> None:
        self._current(session)
        event = decode_score_event(envelope.type, envelope.data)
        if isinstance(event, ScoresChanged):
            for line in event.scores:
                row = _row(line)
                self._lines.append(row)
                key = tuple(row[name] for name in SCORE_KEY)
                self._latest[key] = row
                if row["event_id"] is not None:
                    self._reported(key[:-1], row)
        elif isinstance(event, ResultFrozen):
            self._frozen.append(_frozen_row(event))
        if event is not None:
            self._answers_through = max(self._answers_through, event.answers_through)

    def _reported(self, unit: tuple[Any, ...], row: dict[str, Any]) -> None:
        first = self._first_reports.get(unit)
        if first is None:
            self._first_reports[unit] = {
                **dict(zip(UNIT_KEY, unit, strict=True)),
                "sequence": row["sequence"],
                "recorded_at": row["recorded_at"],
            }
        else:  # lines come in sequence order; a clock can still step back
            first["recorded_at"] = min(first["recorded_at"], row["recorded_at"])

    async def finish_batch(self, session: AsyncSession, last_sequence: int) -> None:
        self._current(session)
        await insert_ignoring_duplicates(session, score_lines, self._lines)
        await upsert(session, current_scores, list(self._latest.values()), key=SCORE_KEY)
        # the earliest of each, whichever batch it came in: "had reported by then" for a sequence and for a time
        await upsert(
            session, first_reports, list(self._first_reports.values()), key=UNIT_KEY, least=("sequence", "recorded_at")
        )
        await insert_ignoring_duplicates(session, frozen_results, self._frozen)
        if self._answers_through:
            await _answered(session, self._answers_through)
        self._session = None


def _frozen_row(event: ResultFrozen) -> dict[str, Any]:
    return {
        "publication_id": event.publication_id,
        "catalogue_id": event.catalogue_id,
        "version": event.catalogue_version,
        "period": event.period,
        "as_of_sequence": event.as_of_sequence,
        "ranking": json.dumps([entry.model_dump(mode="json") for entry in event.ranking]),
        "moved": json.dumps([move.model_dump(mode="json") for move in event.moved]),
    }


async def _answered(session: AsyncSession, through: int) -> None:
    current = await answers_through(session)
    if through > current:
        await upsert(session, scores_answered, [{"stream": ANSWERED, "answers_through": through}], key=["stream"])


async def answers_through(session: AsyncSession) -> int:
    """Every log event up to this sequence is reflected in the score lines."""
    found = await session.scalar(select(scores_answered.c.answers_through).where(scores_answered.c.stream == ANSWERED))
    return int(found or 0)
