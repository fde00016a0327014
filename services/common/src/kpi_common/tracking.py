"""Projection positions: a consumer's last applied sequence, written in the projection's transaction.

Events are applied strictly in sequence order with no gaps, a batch per transaction: a sequence at
or below the position is done already; the position is written once per batch.

A placeholder the relay published in place of an event it could not publish (`vn.kpi.event.withheld.v1`)
is never applied: its position is known and withheld, so the projection records it as a dead letter
of its own, in the batch's transaction, logs it as one error line and moves past it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_common.consumer import BatchResult
from kpi_common.db import insert_ignoring_duplicates
from kpi_common.logs import carrying
from kpi_core.events import EventEnvelope, EventWithheld

YIELD_AFTER_SECONDS = 0.005  # of a batch's work without an await, before the event loop is let in

log = logging.getLogger(__name__)


def tracking_tables(metadata: MetaData) -> tuple[Table, Table]:
    positions = Table(
        "consumer_positions",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("last_sequence", BigInteger, nullable=False),
    )
    dead_letters = Table(
        "dead_letters",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("sequence", BigInteger, primary_key=True, autoincrement=False),
        Column("event_id", String(36), nullable=False),
        Column("reason", Text, nullable=False),
    )
    return positions, dead_letters


Apply = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]
# Called once per batch, after its last event applied and before the commit (a projection writes
# what the whole batch produced, e.g. its own outgoing events, in the same transaction).
FinishBatch = Callable[[AsyncSession, int], Awaitable[None]]


class TrackedProjection:
    """Runs a projection's `apply` inside one transaction with the position check and update."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        consumer: str,
        positions: Table,
        dead_letters: Table,
        apply: Apply,
        finish_batch: FinishBatch | None = None,
        committed: Callable[[], None] | None = None,
        turns: asyncio.Lock | None = None,
    ) -> None:
        self._sessions, self.consumer = sessions, consumer
        self._positions, self._dead_letters, self._apply = positions, dead_letters, apply
        self._finish_batch, self._committed = finish_batch, committed
        # Shared by the projections of one service: their batches take turns in the process instead
        # of waiting on the database's lock (SQLite's busy handler sleeps up to 100 ms a try).
        self._turns = turns or asyncio.Lock()

    async def position(self, session: AsyncSession, *, lock: bool = False) -> int:
        """The last applied sequence; with `lock`, held until the transaction ends, so two instances
        of one consumer can never apply the same event twice."""
        mine = self._positions.c.consumer == self.consumer
        if lock:
            # A write first, which holds the row (as FOR UPDATE would) and, on SQLite, the database's
            # write lock: two followers of one database (reporting follows two streams) then take
            # turns, where a transaction that read first could not write after the other committed.
            unchanged = self._positions.c.last_sequence
            await session.execute(update(self._positions).where(mine).values(last_sequence=unchanged))
        found = await session.scalar(select(self._positions.c.last_sequence).where(mine))
        return int(found) if found is not None else 0

    async def _advance(self, session: AsyncSession, previous: int, sequence: int) -> None:
        if previous == 0:  # the first batch creates the row
            await session.execute(insert(self._positions).values(consumer=self.consumer, last_sequence=sequence))
        else:
            await session.execute(
                update(self._positions)
                .where(self._positions.c.consumer == self.consumer)
                .values(last_sequence=sequence)
            )

    async def last_applied(self) -> int:
        async with self._sessions() as session:
            return await self.position(session)

    async def apply_batch(self, envelopes: Sequence[EventEnvelope]) -> BatchResult:
        """Consecutive events in one transaction, the position written once at the end. When one
        fails, the transaction is rolled back and the events before it are applied again alone."""
        async with self._turns:
            return await self._apply_batch(envelopes)

    async def _apply_batch(self, envelopes: Sequence[EventEnvelope]) -> BatchResult:
        async with self._sessions() as session:
            last = await self.position(session, lock=True)
            todo = [envelope for envelope in envelopes if envelope.sequence > last]
            withheld: list[EventEnvelope] = []
            working_since = time.monotonic()
            for index, envelope in enumerate(todo):
                if time.monotonic() - working_since > YIELD_AFTER_SECONDS:
                    # a batch is CPU-bound between its few awaits: let the service's requests (a
                    # ranking, a health check) and its relay in before going on
                    await asyncio.sleep(0)
                    working_since = time.monotonic()
                if envelope.sequence != last + 1 + index:
                    todo = todo[:index]  # another instance moved on meanwhile, or a gap: stop here
                    break
                if envelope.type == EventWithheld.type:
                    await self._dead_letter(session, envelope, withheld_reason(envelope))
                    withheld.append(envelope)
                    continue
                try:
                    with carrying(envelope.requestid):  # what applying it logs has its request's id
                        await self._apply(session, envelope)
                except Exception as error:
                    await session.rollback()
                    applied = await self._apply_batch(todo[:index]) if index else BatchResult(0)
                    return BatchResult(applied.applied, error)
            if todo:
                if self._finish_batch is not None:
                    await self._finish_batch(session, todo[-1].sequence)
                await self._advance(session, last, todo[-1].sequence)
                await session.commit()
                if self._committed is not None:
                    self._committed()
                self._log_applied(todo)
                for envelope in withheld:
                    with carrying(envelope.requestid):
                        log.error(
                            "%s: event %s was withheld from the stream (%s); dead-lettered",
                            self.consumer,
                            envelope.sequence,
                            withheld_reason(envelope),
                            extra={"consumer": self.consumer, "sequence": envelope.sequence},
                        )
            return BatchResult(len(todo))

    async def _dead_letter(self, session: AsyncSession, envelope: EventEnvelope, reason: str) -> None:
        row = {
            "consumer": self.consumer,
            "sequence": envelope.sequence,
            "event_id": envelope.id,
            "reason": reason[:4000],
        }
        await insert_ignoring_duplicates(session, self._dead_letters, row)

    def _log_applied(self, applied: Sequence[EventEnvelope]) -> None:
        """One line per run of events of one request: its id carried from the HTTP request that
        stored them to here (a set of thousands of rows is one line a batch, not one an event)."""
        for request, run in itertools.groupby(applied, key=lambda envelope: envelope.requestid):
            events = list(run)
            with carrying(request):
                log.info(
                    "%s applied events %s to %s",
                    self.consumer,
                    events[0].sequence,
                    events[-1].sequence,
                    extra={
                        "consumer": self.consumer,
                        "first_sequence": events[0].sequence,
                        "last_sequence": events[-1].sequence,
                        "event_types": sorted({envelope.type for envelope in events}),
                    },
                )

    async def skip(self, envelope: EventEnvelope, reason: str) -> None:
        async with self._turns, self._sessions() as session:
            last = await self.position(session, lock=True)
            if envelope.sequence != last + 1:
                return
            await self._dead_letter(session, envelope, reason)
            if self._finish_batch is not None:
                await self._finish_batch(session, envelope.sequence)
            await self._advance(session, last, envelope.sequence)
            await session.commit()
            if self._committed is not None:
                self._committed()


def withheld_reason(placeholder: EventEnvelope) -> str:
    """What a projection records of a placeholder: the event it stands for and why it was withheld."""
    data = placeholder.data
    return (
        f"withheld from the stream by the relay: {data.get('event_type')} of {data.get('size')} bytes, "
        f"sha256 {data.get('event_sha256')}: {data.get('reason')}"
    )
