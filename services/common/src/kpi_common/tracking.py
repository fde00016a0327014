"""Projection positions: a consumer's last applied sequence, written in the projection's transaction.

Events are applied strictly in sequence order with no gaps: a sequence at or below the position
is a redelivery (done already); one beyond the next is early (an earlier one must come first).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_common.consumer import Outcome
from kpi_core.events import EventEnvelope


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


class TrackedProjection:
    """Runs a projection's `apply` inside one transaction with the position check and update."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        consumer: str,
        positions: Table,
        dead_letters: Table,
        apply: Apply,
    ) -> None:
        self._sessions, self.consumer = sessions, consumer
        self._positions, self._dead_letters, self._apply = positions, dead_letters, apply

    async def position(self, session: AsyncSession, *, lock: bool = False) -> int:
        """The last applied sequence; with `lock`, held until the transaction ends, so two instances
        of one consumer can never apply the same event twice."""
        query = select(self._positions.c.last_sequence).where(self._positions.c.consumer == self.consumer)
        found = await session.scalar(query.with_for_update() if lock else query)
        return int(found) if found is not None else 0

    async def _advance(self, session: AsyncSession, previous: int, sequence: int) -> None:
        if previous == 0 and sequence == 1:
            await session.execute(insert(self._positions).values(consumer=self.consumer, last_sequence=sequence))
        else:
            await session.execute(
                update(self._positions)
                .where(self._positions.c.consumer == self.consumer)
                .values(last_sequence=sequence)
            )

    async def apply(self, envelope: EventEnvelope) -> Outcome:
        async with self._sessions() as session:
            last = await self.position(session, lock=True)
            if envelope.sequence <= last:
                return Outcome.ALREADY_APPLIED
            if envelope.sequence > last + 1:
                return Outcome.NOT_YET
            await self._apply(session, envelope)
            await self._advance(session, last, envelope.sequence)
            await session.commit()
            return Outcome.APPLIED

    async def skip(self, envelope: EventEnvelope, reason: str) -> None:
        async with self._sessions() as session:
            last = await self.position(session, lock=True)
            if envelope.sequence != last + 1:
                return
            await session.execute(
                insert(self._dead_letters).values(
                    consumer=self.consumer, sequence=envelope.sequence, event_id=envelope.id, reason=reason[:4000]
                )
            )
            await self._advance(session, last, envelope.sequence)
            await session.commit()
