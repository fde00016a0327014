"""The one consumer loop: fetch a batch, handle in order, ack after commit, nak on trouble.

A projection's handler returns an `Outcome`. The loop never handles two messages at once, so
per-key order in the projections is the order of the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from typing import Any, Protocol

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import FetchTimeoutError

from kpi_common.messaging import connect
from kpi_common.streams import MAX_DELIVERIES, STREAM_NAME, consumer_config, ensure_stream
from kpi_core.events import EventEnvelope

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    APPLIED = "applied"
    ALREADY_APPLIED = "already_applied"
    NOT_YET = "not_yet"  # an earlier sequence has not been applied: wait for it


class Projection(Protocol):
    async def apply(self, envelope: EventEnvelope) -> Outcome:
        """Apply one event and record the position in the same transaction."""

    async def skip(self, envelope: EventEnvelope, reason: str) -> None:
        """Record a message that cannot be applied as a dead letter and advance past it."""


async def run_consumer(
    js: JetStreamContext,
    durable: str,
    projection: Projection,
    stop: asyncio.Event,
    *,
    batch: int = 100,
    fetch_timeout: float = 1.0,
    retry_delay: float = 0.5,
) -> None:
    """Apply the stream to a projection until `stop` is set; returns after draining the batch in hand."""
    subscription = await js.pull_subscribe(
        "kpi.>", durable=durable, stream=STREAM_NAME, config=consumer_config(durable)
    )
    try:
        while not stop.is_set():
            try:
                messages = await subscription.fetch(batch, timeout=fetch_timeout)
            except (TimeoutError, FetchTimeoutError, NatsTimeoutError):
                continue
            for index, message in enumerate(messages):
                try:
                    envelope = EventEnvelope.from_bytes(message.data)
                    outcome = await projection.apply(envelope)
                except Exception as error:
                    if message.metadata.num_delivered >= MAX_DELIVERIES - 1:
                        log.exception("%s: giving up on a message after %s deliveries", durable, MAX_DELIVERIES)
                        await _give_up(projection, message, error)
                    else:
                        log.exception("%s: handling failed, will retry", durable)
                        await message.nak(delay=retry_delay)
                    await _nak_all(messages[index + 1 :], retry_delay)
                    break
                if outcome is Outcome.NOT_YET:
                    await message.nak(delay=retry_delay)
                    await _nak_all(messages[index + 1 :], retry_delay)
                    break
                await message.ack()
    finally:
        await subscription.unsubscribe()


async def _give_up(projection: Projection, message: Any, error: Exception) -> None:
    try:
        envelope = EventEnvelope.from_bytes(message.data)
    except Exception:
        log.error("undecodable message at stream sequence %s terminated", message.metadata.sequence.stream)
        await message.term()
        return
    await projection.skip(envelope, f"{type(error).__name__}: {error}")
    await message.ack()


async def _nak_all(messages: list[Any], delay: float) -> None:
    for message in messages:
        await message.nak(delay=delay)


class StreamFollower:
    """Keeps a projection following the stream: connects (and reconnects) to NATS, then runs the loop."""

    def __init__(self, nats_url: str, durable: str, projection: Projection, replicas: int = 1) -> None:
        self._nats_url, self._durable, self._projection, self._replicas = nats_url, durable, projection, replicas
        self.stop = asyncio.Event()
        self.nats: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.nats is not None and self.nats.is_connected

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"{self._durable}-consumer")

    async def run(self) -> None:
        while not self.stop.is_set():
            try:
                if self.nats is None or self.nats.is_closed:
                    self.nats = await connect(self._nats_url, f"kpi-{self._durable}")
                js = self.nats.jetstream()
                await ensure_stream(js, self._replicas)
                await run_consumer(js, self._durable, self._projection, self.stop)
            except Exception as error:
                log.warning("%s consumer: %s: %s; retrying", self._durable, type(error).__name__, error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=1.0)

    async def close(self, timeout: float = 10.0) -> None:
        """Finish and acknowledge the batch in hand, then drain the connection."""
        self.stop.set()
        if self._task is not None:
            done, _ = await asyncio.wait([self._task], timeout=timeout)
            if not done:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        if self.nats is not None and not self.nats.is_closed:
            await self.nats.drain()
