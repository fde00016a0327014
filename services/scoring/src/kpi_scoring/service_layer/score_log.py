"""Scoring's own events: what each applied batch changed, written in the batch's transaction.

The projection hands over every score line it changed and every ranking it froze; at the end of
the batch they become score events in `score_log` and `score_outbox` (the relay publishes them on
the score stream), committed with the projection and its position, so a score event exists
exactly when the scores it describes do. A replay (rebuild) derives the same scores again; what
was already published (up to the highest `answers_through` in the log) is not published twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.subjects import score_subject
from kpi_core.events import EventEnvelope
from kpi_core.inputs import InputValue
from kpi_core.score_events import SCORE_SOURCE, ResultFrozen, ScoresChanged
from kpi_core.scoring import IndicatorScore, display_points
from kpi_scoring.adapters.orm import score_log, score_outbox

LINES_PER_EVENT = 1_000  # keeps a score event far below the stream's message size limit


def score_line(row: dict[str, Any], score: IndicatorScore | None, recorded_at: str) -> dict[str, Any]:
    """A score row as scoring stores it, as the score stream carries it (without the rule, which is
    the catalogue's: the line names its catalogue version and code): a `ScoreLine` in its JSON form,
    written directly (a model built and dumped again per line was a tenth of scoring's CPU under
    load; `tests/unit/test_explanation_bytes.py` holds the two equal). A leaf's value, formula,
    inputs, events and peers are what its explanation says of them, taken from its score (`score`,
    None for a sum) rather than read back from the explanation's text."""
    peer = score.peer if score is not None else None
    return {
        "catalogue_id": row["catalogue_id"],
        "catalogue_version": row["version"],
        "period": row["period"],
        "stage": row["stage"],
        "unit_id": row["unit_id"],
        "code": row["code"],
        "sequence": row["sequence"],
        "recorded_at": recorded_at,
        "status": row["status"],
        "points": row["points_exact"],
        "max_points": row["max_points"],
        "value": str(display_points(score.value)) if score is not None and score.value is not None else None,
        "formula": score.formula if score is not None else "",
        "inputs": shown_inputs(score.inputs) if score is not None else {},
        "event_id": score.event_id if score is not None else None,
        "previous_period_event_id": score.previous_event_id if score is not None else None,
        "peer": {
            "min": str(peer.minimum),
            "max": str(peer.maximum),
            "min_event_id": peer.minimum_event_id,
            "max_event_id": peer.maximum_event_id,
        }
        if peer is not None
        else None,
    }


def shown_inputs(inputs: Mapping[str, InputValue]) -> dict[str, str | bool]:
    """A leaf's inputs as its explanation and its score line show them: numbers as their text."""
    return {name: value if isinstance(value, bool) else str(value) for name, value in inputs.items()}


class ScoreLog:
    def __init__(self) -> None:
        self._session: AsyncSession | None = None
        self._first = 0
        self._lines: list[dict[str, Any]] = []
        self._frozen: list[ResultFrozen] = []
        self._log_head: tuple[int, int] | None = None

    def _current(self, session: AsyncSession) -> None:
        if session is not self._session:  # a new batch, or its retry after a rollback: start afresh
            self._session, self._first, self._lines, self._frozen = session, 0, [], []
            self._log_head = None

    async def _head(self, session: AsyncSession) -> tuple[int, int]:
        """(the last score event's number, the highest log sequence the score log answers)."""
        self._current(session)
        if self._log_head is None:
            query = select(func.max(score_log.c.sequence), func.max(score_log.c.answers_through))
            row = (await session.execute(query)).one()
            self._log_head = int(row[0] or 0), int(row[1] or 0)
        return self._log_head

    async def published_through(self, session: AsyncSession) -> int:
        """Every score line of the log events up to here is already in the score log (a replay)."""
        return (await self._head(session))[1]

    def saw(self, session: AsyncSession, sequence: int) -> None:
        self._current(session)
        self._first = self._first or sequence

    def changed(self, session: AsyncSession, lines: Iterable[dict[str, Any]]) -> None:
        self._current(session)
        self._lines.extend(lines)

    def froze(self, session: AsyncSession, frozen: ResultFrozen) -> None:
        self._current(session)
        self._frozen.append(frozen)

    async def finish_batch(self, session: AsyncSession, last_sequence: int) -> None:
        number, published_through = await self._head(session)
        if last_sequence > published_through:
            before = max(published_through, (self._first or last_sequence) - 1)
            events = list(_events(self._lines, self._frozen, published_through, before, last_sequence))
            await _write(session, number, events)
        self._session = None


@dataclass(frozen=True)
class _Outgoing:
    """A score event about to be written: its type, subjects, promise and data (JSON already)."""

    type: str
    subject: str
    nats_subject: str
    answers_through: int
    data: dict[str, Any]

    @classmethod
    def changed(cls, answers_through: int, lines: list[dict[str, Any]]) -> _Outgoing:
        shape = ScoresChanged(answers_through=answers_through)  # the lines are in their JSON form already
        data = {"answers_through": answers_through, "scores": lines}
        return cls(shape.type, shape.subject(), score_subject(shape), answers_through, data)

    @classmethod
    def of(cls, event: ResultFrozen) -> _Outgoing:
        return cls(
            event.type, event.subject(), score_subject(event), event.answers_through, event.model_dump(mode="json")
        )


def _events(
    lines: list[dict[str, Any]], frozen: list[ResultFrozen], published_through: int, before: int, last_sequence: int
) -> Iterator[_Outgoing]:
    """Lines in chunks that promise only what came before the batch, then the frozen rankings, and
    last the event that promises the whole batch (empty when nothing changed: it still moves on)."""
    fresh = [line for line in lines if line["sequence"] > published_through]
    chunks = [fresh[start : start + LINES_PER_EVENT] for start in range(0, len(fresh), LINES_PER_EVENT)] or [[]]
    for chunk in chunks[:-1]:
        yield _Outgoing.changed(before, chunk)
    for ranking in frozen:
        if ranking.publication_sequence > published_through:
            yield _Outgoing.of(ranking.model_copy(update={"answers_through": before}))
    yield _Outgoing.changed(last_sequence, chunks[-1])


def envelope_text(envelope: EventEnvelope) -> str:
    """`envelope.to_bytes()` as text, by orjson: the same bytes for what a score event holds (text,
    whole numbers, true, false and null; `tests/unit/test_score_envelope_bytes.py` holds the two
    equal), 14x faster than json.dumps on a thousand lines (a tenth of scoring's CPU under load)."""
    return orjson.dumps(envelope.shown()).decode("utf-8")


async def _write(session: AsyncSession, number: int, events: list[_Outgoing]) -> None:
    now = datetime.now(UTC)
    log_rows, outbox_rows = [], []
    for offset, event in enumerate(events, start=1):
        envelope = EventEnvelope(
            id=str(uuid.uuid4()),
            source=SCORE_SOURCE,
            type=event.type,
            subject=event.subject,
            time=now,
            dataschema=f"/v1/schemas/{event.type}",
            sequence=number + offset,
            data=event.data,
        )
        log_rows.append(
            {
                "sequence": envelope.sequence,
                "event_id": envelope.id,
                "type": event.type,
                "answers_through": event.answers_through,
                "envelope": envelope_text(envelope),
            }
        )
        outbox_rows.append({"sequence": envelope.sequence, "nats_subject": event.nats_subject})
    await session.execute(insert(score_log), log_rows)
    await session.execute(insert(score_outbox), outbox_rows)
