"""The one consumer loop: read the stream from the projection's own position, apply in batches.

A projection stores the last event sequence it applied, in the transaction that applied it. The
loop reads the stream from there with an ephemeral consumer (no acknowledgements, no server-side
redelivery to run out of), so whatever happened before (a kill -9, a redelivery storm, a consumer
deleted by the server) it resumes exactly where the projection stands. Events are applied in
sequence order, a batch per transaction; one that arrives early waits in a bounded reorder buffer
for the ones before it; a failing event splits the batch (the good prefix commits), is retried,
and after `MAX_ATTEMPTS` is recorded as a dead letter so the rest can go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from kpi_common.database_errors import database_unavailable
from kpi_common.logs import carrying
from kpi_common.messaging import close_quietly, connect
from kpi_common.streams import EVENTS, Stream, ensure_stream
from kpi_core.events import EventEnvelope

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5  # tries of one failing event before it becomes a dead letter
REORDER_LIMIT = 10_000  # early events held while waiting for an earlier one, before reading again
LIVE_BATCH = 500  # events applied in one transaction, at most


class Outcome(enum.Enum):
    APPLIED = "applied"
    ALREADY_APPLIED = "already_applied"
    NOT_YET = "not_yet"  # an earlier sequence has not been applied: wait for it


@dataclass(frozen=True)
class BatchResult:
    applied: int  # how many events of the batch were applied (a contiguous run from the position)
    failed: Exception | None = None  # the error of the event just after the applied ones, if any


class Projection(Protocol):
    async def last_applied(self) -> int:
        """The last event sequence applied."""

    async def apply_batch(self, envelopes: Sequence[EventEnvelope]) -> BatchResult:
        """Apply consecutive events (the first is position + 1) in one transaction with the position;
        when one fails, commit the ones before it and report the error."""

    async def skip(self, envelope: EventEnvelope, reason: str) -> None:
        """Record an event that cannot be applied as a dead letter and advance past it."""


def reading_config(after: int, stream: Stream = EVENTS) -> ConsumerConfig:
    """An ephemeral reader from stream sequence `after` + 1: an event's first copy is never before
    its own sequence on the stream (the relay publishes in order; duplicates only add), so nothing
    after the position is passed over."""
    return ConsumerConfig(
        description="kpi-ledger projection reader",
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=after + 1,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=30.0,
        filter_subject=stream.subjects[0],
    )


@dataclass
class FollowerStats:
    """What a follower did since it started, for metrics and readiness."""

    applied: int = 0  # events applied
    rereads: int = 0  # times the stream was read again from the position (a gap, a failure)
    retries: int = 0  # failed attempts of an event
    dead_lettered: int = 0
    stuck_since: float | None = None  # monotonic time since events wait that could not be applied
    position: int = 0  # the last sequence applied (committed), as the loop knows it
    moved: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # set when `position` moves

    def advanced(self, position: int) -> None:
        self.position = position
        self.moved.set()

    def stuck(self) -> None:
        if self.stuck_since is None:
            self.stuck_since = time.monotonic()

    def stalled_for(self) -> float:
        return time.monotonic() - self.stuck_since if self.stuck_since is not None else 0.0


class _Reader:
    """The stream from a position on, in event-sequence order: early events wait for earlier ones.

    It pulls from its ephemeral consumer with the JetStream pull protocol on an inbox of its own
    (one request of up to `batch` messages in flight, asked for again as soon as a run is handed
    out, so the next batch arrives while this one is applied). A run is handed out when `batch`
    events are in hand or the stream has no more (the last message says nothing is pending).
    Nothing is passed over: messages come in consumer order, and a consumer sequence that jumps
    (a message lost on the way, e.g. over a reconnect) reads the stream again from the position."""

    def __init__(self, js: JetStreamContext, name: str, stream: Stream) -> None:
        self._js, self._name, self._stream = js, name, stream
        self._client: Any = js._nc  # the connection the context publishes on
        self._subscription: Any = None
        self._consumer = ""
        self._inbox = ""
        self._early: dict[int, EventEnvelope] = {}
        self._arrived: list[tuple[Any, bytes]] = []  # (metadata, payload) not decoded yet
        self._wake = asyncio.Event()
        self._requested = 0  # messages the request in flight may still deliver
        self._request_ends = 0.0  # when the request in flight expires (monotonic), with a margin
        self._request_reconnects = 0  # the connection's reconnections when the request was sent
        self._consumer_sequence = 0  # the last consumer sequence received
        self._caught_up = False  # the last message received left nothing pending on the stream
        self._lost = False  # a message was lost on the way: read again from the position
        self._failure: Exception | None = None

    async def open(self, after: int) -> None:
        await self.close()
        self._early.clear()
        self._arrived, self._requested, self._consumer_sequence = [], 0, 0
        self._caught_up, self._lost, self._failure = False, False, None
        info = await self._js.add_consumer(self._stream.name, reading_config(after, self._stream))
        self._consumer, self._inbox = info.name, self._client.new_inbox()
        self._subscription = await self._client.subscribe(
            self._inbox, cb=self._received, pending_msgs_limit=4 * REORDER_LIMIT
        )

    async def close(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(self._stream.name, self._consumer)
            self._subscription = None

    async def _received(self, message: Any) -> None:
        status = message.headers.get("Status") if message.headers else None
        if status is not None and not message.data:
            self._ended(status, message.headers.get("Description", ""))
            return
        try:
            metadata = message.metadata
        except Exception:
            log.error("%s: a message without stream metadata on the reader's inbox ignored", self._name)
            return
        if metadata.sequence.consumer != self._consumer_sequence + 1:
            self._lost = True  # the consumer delivered something that never arrived here
        self._consumer_sequence = metadata.sequence.consumer
        self._requested = max(self._requested - 1, 0)
        self._caught_up = metadata.num_pending == 0
        self._arrived.append((metadata, message.data))
        self._wake.set()

    def _ended(self, status: str, description: str) -> None:
        """A status message: the request in flight is over (expired, nothing there, or refused)."""
        self._requested = 0
        if (status == "409" and "Consumer Deleted" in description) or status == "503":
            self._failure = ConnectionError(f"the stream's reader is gone ({status} {description})")
        elif status == "404":
            self._caught_up = True
        self._wake.set()

    async def _request(self, batch: int, timeout: float) -> None:
        """Ask for up to `batch` messages, waiting up to `timeout` for them (one request in flight)."""
        if self._requested and time.monotonic() < self._request_ends and not self._request_lost():
            return
        if self._requested:  # expired with no word from the server: lost (a reconnect); is the reader there?
            await self._js.consumer_info(self._stream.name, self._consumer)
        request = {"batch": batch, "expires": int(timeout * 1_000_000_000)}
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self._stream.name}.{self._consumer}"
        await self._client.publish(subject, json.dumps(request).encode(), reply=self._inbox)
        self._requested, self._request_ends = batch, time.monotonic() + timeout + 2.0
        self._request_reconnects = self._client.stats["reconnects"]

    def _request_lost(self) -> bool:
        """The connection was made again since the request was sent: the server forgot it."""
        return bool(self._client.stats["reconnects"] != self._request_reconnects)

    def _take(self, position: int) -> None:
        arrived, self._arrived = self._arrived, []
        for metadata, payload in arrived:
            try:
                envelope = EventEnvelope.from_bytes(payload)
            except Exception:
                log.error("%s: undecodable message at stream sequence %s ignored", self._name, metadata.sequence.stream)
                continue
            if envelope.sequence > position:
                self._early[envelope.sequence] = envelope

    def _ready(self, position: int, batch: int) -> int:
        """How many consecutive events after `position` are in hand (up to `batch`)."""
        count, early = 0, self._early
        while count < batch and position + 1 + count in early:
            count += 1
        return count

    async def next_run(self, position: int, batch: int, timeout: float, stop: asyncio.Event) -> list[EventEnvelope]:
        """The consecutive events after `position` available now: `batch` of them, or all the stream
        holds (waits up to `timeout` for some; nothing more once `stop` is set: a shutdown does not
        wait out the read)."""
        if self._lost:  # what was lost is read again from where the projection stands
            log.warning("%s: a message was lost on the way; reading again from %s", self._name, position)
            await self.open(position)
        for stale in [sequence for sequence in self._early if sequence <= position]:
            del self._early[stale]
        deadline = time.monotonic() + timeout
        while True:
            self._take(position)
            if self._failure is not None:
                raise self._failure
            ready = self._ready(position, batch)
            left = deadline - time.monotonic()
            if ready >= batch or (ready and (self._caught_up or self._lost)) or left <= 0 or stop.is_set():
                break
            if not self._requested or time.monotonic() >= self._request_ends or self._request_lost():
                await self._request(batch, timeout)
            self._wake.clear()
            if self._arrived or self._failure is not None:
                continue
            waking = asyncio.ensure_future(self._wake.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waking, stopping}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            waking.cancel()
            stopping.cancel()
        run = [self._early.pop(position + 1 + index) for index in range(ready)]
        if not self._requested and not self._caught_up and not stop.is_set():
            await self._request(batch, timeout)  # the next batch comes while this one is applied
        return run

    @property
    def waiting(self) -> int:
        return len(self._early)


async def run_consumer(
    js: JetStreamContext,
    name: str,
    projection: Projection,
    stop: asyncio.Event,
    *,
    batch: int = LIVE_BATCH,
    fetch_timeout: float = 1.0,
    retry_delay: float = 0.5,
    stream: Stream = EVENTS,
    stats: FollowerStats | None = None,
) -> None:
    """Apply the stream to a projection until `stop` is set; returns after committing the batch in hand."""
    stats = stats or FollowerStats()
    reader = _Reader(js, name, stream)
    position = await projection.last_applied()
    stats.advanced(position)
    await reader.open(position)
    attempts: dict[int, int] = {}
    try:
        while not stop.is_set():
            run = await reader.next_run(position, batch, fetch_timeout, stop)
            if not run:
                if not reader.waiting:
                    stats.stuck_since = None  # caught up
                    continue
                stats.stuck()  # later events are here, the next one is not
                if reader.waiting > REORDER_LIMIT:  # an earlier event is missing from what was read: read again
                    log.warning("%s: %s events wait for %s; reading again", name, reader.waiting, position + 1)
                    stats.rereads += 1
                    await reader.open(position)
                continue
            result = await projection.apply_batch(run)
            position += result.applied
            stats.applied += result.applied
            if result.applied:
                stats.stuck_since = None
                stats.advanced(position)
            if result.failed is None:
                continue
            stats.stuck()
            stats.retries += 1
            failing = run[result.applied]
            if not database_unavailable(result.failed):  # the database away is no fault of the event's
                attempts[failing.sequence] = attempts.get(failing.sequence, 0) + 1
            if attempts.get(failing.sequence, 0) >= MAX_ATTEMPTS:
                with carrying(failing.requestid):
                    log.error("%s: event %s failed %s times; dead-lettered", name, failing.sequence, MAX_ATTEMPTS)
                await projection.skip(failing, f"{type(result.failed).__name__}: {result.failed}")
                stats.dead_lettered += 1
                stats.stuck_since = None
                attempts.pop(failing.sequence)
                position = await projection.last_applied()
                stats.advanced(position)
            else:
                with carrying(failing.requestid):
                    log.warning("%s: event %s failed (%s), will retry", name, failing.sequence, result.failed)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=retry_delay)
            stats.rereads += 1
            await reader.open(position)  # what followed the failing event is read again
    finally:
        await reader.close()


class StreamFollower:
    """Keeps a projection following the stream: connects (and reconnects) to NATS, then runs the loop."""

    def __init__(
        self, nats_url: str, name: str, projection: Projection, replicas: int = 1, stream: Stream = EVENTS
    ) -> None:
        self._nats_url, self._name, self._projection, self._replicas = nats_url, name, projection, replicas
        self.stream = stream
        self.batch = LIVE_BATCH
        self.stats = FollowerStats()
        self.stop = asyncio.Event()
        self.nats: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def connected(self) -> bool:
        return self.nats is not None and self.nats.is_connected

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"{self._name}-consumer")

    async def run(self) -> None:
        while not self.stop.is_set():
            try:
                if self.nats is None or self.nats.is_closed:
                    self.nats = await connect(self._nats_url, f"kpi-{self._name}")
                js = self.nats.jetstream()
                await ensure_stream(js, self._replicas, self.stream)
                await run_consumer(
                    js, self._name, self._projection, self.stop, batch=self.batch, stream=self.stream, stats=self.stats
                )
            except Exception as error:
                log.warning("%s consumer: %s: %s; retrying", self._name, type(error).__name__, error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), timeout=1.0)

    async def close(self, timeout: float = 10.0) -> None:
        """Finish and commit the batch in hand, then drain the connection."""
        self.stop.set()
        if self._task is not None:
            done, _ = await asyncio.wait([self._task], timeout=timeout)
            if not done:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        await close_quietly(self.nats)
