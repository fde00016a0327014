"""The outbox relay: publishes stored events to KPI_EVENTS in sequence order, in batches, at least once.

The relay itself is `kpi_common.relay.Relay` (its docstring gives the rules: why the stream is never
out of order, why nothing is lost or doubled); this module gives it ingest's outbox. Each message
carries `Nats-Msg-Id` = event id, and each is stored only right after the event before it, so a
re-publish after a crash, or a second ingest instance relaying the same database, cannot put an
event on the stream twice or out of place. Rows leave the outbox only once JetStream holds them,
so a NATS outage delays delivery, never loses it. An event no retry can publish (over the server's
maximum payload) is withheld: recorded in `withheld_events` (GET /v1/admin/withheld), a placeholder in
its place on the stream.
"""

from __future__ import annotations

import asyncio
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_common.relay import Pending, Relay
from kpi_common.streams import STREAM_NAME, ensure_stream
from kpi_common.subjects import WITHHELD_EVENT_SUBJECT
from kpi_core.events import EventWithheld
from kpi_ingest.adapters.event_store import EventStore


class IngestOutbox:
    """Ingest's outbox as a relay source: the outbox table joined to the events it names, one transaction a call."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def pending(self, limit: int) -> list[Pending]:
        async with self._sessions() as session:
            pending = await EventStore(session).pending_outbox(limit)
            await session.rollback()
        return pending

    async def previous_msg_id(self, sequence: int) -> str | None:
        async with self._sessions() as session:
            found = await EventStore(session).previous_event_id(sequence)
            await session.rollback()
        return found

    async def mark_published(self, up_to_sequence: int) -> None:
        async with self._sessions() as session:
            await EventStore(session).mark_published(up_to_sequence)
            await session.commit()

    async def withhold(self, message: Pending, withheld: EventWithheld) -> None:
        async with self._sessions() as session:
            await EventStore(session).record_withheld(withheld)
            await session.commit()


class OutboxRelay(Relay):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        nats_url: str,
        *,
        batch: int = 500,
        max_in_flight: int = 500,
        replicas: int = 1,
        write_lock: asyncio.Lock | None = None,
    ) -> None:
        super().__init__(
            IngestOutbox(sessions),
            nats_url,
            client_name="kpi-ingest-relay",
            stream_name=STREAM_NAME,
            ensure_stream=partial(ensure_stream, replicas=replicas),
            withheld_subject=WITHHELD_EVENT_SUBJECT,
            batch=batch,
            max_in_flight=max_in_flight,
            write_lock=write_lock,
        )
