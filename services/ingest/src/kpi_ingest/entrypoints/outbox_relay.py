"""The outbox relay: publishes stored events to JetStream in sequence order, at least once.

Each message carries `Nats-Msg-Id` = event id, so a re-publish after a crash is dropped by the
stream's duplicate window; consumers also skip sequences they have applied. Rows leave the
outbox only after JetStream acknowledged them, so a NATS outage delays delivery, never loses it.
Several relays may run at once: each publishes in ascending order, so the first copy of every
event reaches the stream in sequence order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_common.messaging import connect
from kpi_common.streams import STREAM_NAME, ensure_stream
from kpi_ingest.adapters.event_store import EventStore

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        nats_url: str,
        *,
        batch: int = 500,
        replicas: int = 1,
        write_lock: asyncio.Lock | None = None,
    ) -> None:
        self._sessions, self._nats_url, self._batch, self._replicas = sessions, nats_url, batch, replicas
        self._write_lock = write_lock or asyncio.Lock()
        self.wake = asyncio.Event()
        self._stop = asyncio.Event()
        self.nats: Client | None = None

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.nats is None or self.nats.is_closed:
                    self.nats = await connect(self._nats_url, "kpi-ingest-relay")
                    await ensure_stream(self.nats.jetstream(), self._replicas)
                published = await self.publish_pending()
            except Exception as error:  # NATS or database unavailable: retry, nothing is lost
                log.warning("outbox relay: %s: %s; retrying", type(error).__name__, error)
                await self._pause(1.0)
                continue
            if published == 0:
                await self._pause(0.25)

    async def publish_pending(self) -> int:
        assert self.nats is not None
        js = self.nats.jetstream()
        async with self._sessions() as session:
            pending = await EventStore(session).pending_outbox(self._batch)
            await session.rollback()
        if not pending:
            return 0
        last = 0
        try:
            for subject, stored in pending:
                await js.publish(
                    subject, stored.envelope.to_bytes(), stream=STREAM_NAME, headers={"Nats-Msg-Id": stored.envelope.id}
                )
                last = stored.sequence
        finally:
            if last:
                async with self._write_lock, self._sessions() as session:
                    await EventStore(session).mark_published(last)
                    await session.commit()
        return len(pending)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)
        self.wake.clear()

    async def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        if self.nats is not None and not self.nats.is_closed:
            await self.nats.drain()
