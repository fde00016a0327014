"""The outbox relay core: publishes an outbox to a JetStream stream in batches, many messages in flight.

A service keeps the messages it must publish in an outbox (`OutboxSource`), numbered by a sequence
that grows by one per message and committed in that order. The relay makes the stream a copy of the
outbox, in the same order, each message once, and removes rows from the outbox only once the stream
holds them. Ingest uses it for KPI_EVENTS; any other outbox and stream can (`Relay` knows no table).

How one pass works (`Relay.publish_pending`):

1. Read the first `batch` pending rows F, F+1, ... in sequence order.
2. Anchor on the stream (skipped when the relay's previous pass stored its whole batch, each row at
   its place, and this batch starts right after it: the relay then knows the head; `_continuing`):
   read its last message (stream sequence S, its Nats-Msg-Id, the outbox
   sequence L its payload carries) and compare with the outbox (`stream_head`, `plan_batch`):
   - the stream is empty and F has no predecessor, or its last message is F's predecessor: publish
     the batch after S;
   - its last message is the outbox's own message L >= F (its id is the one the outbox has for L):
     the stream is ahead (another relay, or an earlier run whose marking was lost); mark the outbox
     published up to L without publishing again, and publish what the batch holds after L, after S;
   - anything else (the stream is behind the outbox, or ends with a message the outbox does not hold):
     `StreamMismatch`, nothing is published or marked, the relay logs an error and retries later.
3. Publish every row with `publish_async`, up to `max_in_flight` unacknowledged at once, row F+i
   with `Nats-Msg-Id` = its id and `Nats-Expected-Last-Sequence` = S+i (`publish_batch`).
4. Wait for the acknowledgements; the longest acknowledged prefix of the batch (a duplicate ack
   counts: the message is on the stream) is marked published, under the write lock.

Why the stream is never out of order: the server stores row F+i only if the stream's last sequence
is S+i at that moment, so only directly after row F+i-1 (S held row F-1, checked in step 2; by
induction S+i holds row F+i-1, whoever stored it). When row N is refused or lost (too large, a
timeout, a connection lost), every later row in flight is refused as well (10071, wrong last
sequence): the stream holds a prefix of the outbox and nothing after a gap. Two relays on one
outbox both anchor on the same stream, so each row is stored once, in place, whichever gets there
first; the other gets a refusal (or a duplicate ack) and finds the stream ahead on its next pass.

What cannot be published at all is withheld, in place (`Relay.publish_pending`, `unpublishable`): a
row refused for a reason no retry can cure (over the server's `max_payload`, counted with its
headers, checked before sending, since the server would close the connection; over the stream's
message size limit, 10054; a subject the client refuses) is replaced at its own place by a small
placeholder (`kpi_core.events.EventWithheld`: the row's sequence, id, type, subjects, SHA-256, size
and the reason), published exactly as the row would have been (its `Nats-Msg-Id`, the same expected
last sequence), so the stream still holds one message per row, in order, and the rows behind it
follow. The source records the withholding (`OutboxSource.withhold`, committed before the
placeholder is published, so no placeholder is ever on the stream unrecorded); the relay counts it
(`withheld`) and logs it as one error line. Consumers pass over a placeholder (`kpi_common.tracking`).
Anything else (a timeout, no responders, a connection lost, a refusal because the stream moved) is
retried as before: withholding is never a way out of an outage.

Why nothing is lost: a row leaves the outbox only when the stream acknowledged it or holds a later
row of the same outbox (which it only can after holding this one). NATS or the database down:
nothing is marked, the relay retries with back-off.

Why nothing is doubled: a row is stored only at its own place (the expected last sequence), so a
copy published again is refused however late it comes; `Nats-Msg-Id` also lets the duplicate window
drop a copy. A relay never loops: every pass marks rows, or finds the stream ahead and marks up to
it, or was refused because the stream moved meanwhile (the next pass finds it ahead), or fails and
backs off. A stream that does not continue the outbox is reported (`StreamMismatch`), never patched.

Why not `Nats-Expected-Last-Msg-Id` (tried on nats-server 2.15.1): on one server it works, and the
duplicate window is checked before it (a copy of a stored message gets a duplicate ack even with a
wrong expected id, while a wrong `Nats-Expected-Last-Sequence` is refused before the duplicate
window: 10071, not a duplicate ack). But on a replicated stream (R3, deploy/nats/cluster) the
expected last msg id is checked only when the replicas apply the message: one refused there is a
"critical write error" on every replica and the stream then accepts no write at all (no reply,
for at least 90 s). The expected last sequence is checked by the leader before it proposes, so a
refusal leaves the stream writable. The anchor of step 2 makes sequences as safe as ids.

nats-py 2.16 leaves a `publish_async` future pending forever when the server answers with an
error (nats-io/nats.py#985): `PipelinedJetStream` puts the error on the future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import BadSubjectError, MaxPayloadError
from nats.js import JetStreamContext
from nats.js.api import Header, PubAck
from nats.js.errors import APIError, NotFoundError

from kpi_common.messaging import close_quietly, connect
from kpi_core.audit import event_sha256
from kpi_core.events import EventEnvelope, EventWithheld, withheld_envelope

log = logging.getLogger(__name__)

MSG_ID = Header.MSG_ID.value
EXPECTED_LAST_SEQUENCE = Header.EXPECTED_LAST_SEQUENCE.value
EXPECTED_STREAM = Header.EXPECTED_STREAM.value
WRONG_LAST_SEQUENCE = 10071  # JetStream: the stream's last sequence is not the expected one
MESSAGE_TOO_LARGE = 10054  # JetStream: the message exceeds the stream's maximum message size

EnsureStream = Callable[[JetStreamContext], Awaitable[None]]


@dataclass(frozen=True)
class Pending:
    """One outbox row to publish."""

    sequence: int
    subject: str
    msg_id: str
    payload: bytes


class OutboxSource(Protocol):
    """An outbox, as the relay sees it. Each call is its own transaction."""

    async def pending(self, limit: int) -> list[Pending]:
        """The first `limit` rows not yet published, in ascending sequence order, none missing between them."""
        ...

    async def previous_msg_id(self, sequence: int) -> str | None:
        """The msg id of the outbox message just before `sequence`; None if `sequence` is the first
        (or if the outbox has no message before it)."""
        ...

    async def mark_published(self, up_to_sequence: int) -> None:
        """Remove every row up to and including this sequence, and commit."""
        ...

    async def withhold(self, message: Pending, withheld: EventWithheld) -> None:
        """Record, and commit, that this row cannot be published and a placeholder takes its place
        (idempotent: a second relay, or the same row again after a crash, records it once). The row
        stays in the outbox until the placeholder is on the stream (`mark_published`)."""
        ...


def envelope_sequence(payload: bytes) -> int:
    """The outbox sequence a message carries: the `sequence` attribute of its CloudEvents envelope."""
    return EventEnvelope.from_bytes(payload).sequence


class StreamMismatch(RuntimeError):
    """The stream does not continue this outbox: publishing would put messages out of place."""


@dataclass(frozen=True)
class StreamHead:
    """The stream's last message, as far as the relay needs it."""

    stream_sequence: int  # the stream's last sequence (0 when nothing was ever stored)
    msg_id: str | None  # that message's Nats-Msg-Id ("" if it has none); None when the stream holds no message
    sequence: int | None  # the outbox sequence its payload carries; None if it carries none


async def stream_head(
    js: JetStreamContext, stream_name: str, sequence_of: Callable[[bytes], int] = envelope_sequence
) -> StreamHead:
    info = await js.stream_info(stream_name)
    last = info.state.last_seq
    if not last or not info.state.messages:
        return StreamHead(last, None, None)
    message = await js.get_msg(stream_name, last)
    try:
        sequence: int | None = sequence_of(message.data or b"")
    except ValueError:  # not a message of an outbox (pydantic's ValidationError is a ValueError)
        sequence = None
    return StreamHead(last, (message.headers or {}).get(MSG_ID, ""), sequence)


@dataclass(frozen=True)
class Plan:
    """What a pass does: mark rows the stream already holds, then publish the rest after a stream sequence."""

    ahead_to: int | None  # the stream already holds the outbox up to this sequence
    after: int  # the stream sequence the first row to publish must follow
    to_publish: list[Pending]


async def plan_batch(source: OutboxSource, head: StreamHead, pending: list[Pending]) -> Plan:
    """Where the batch goes on the stream (step 2 of the module docstring); `StreamMismatch` if nowhere."""
    first = pending[0].sequence
    if head.msg_id == await source.previous_msg_id(first):
        return Plan(None, head.stream_sequence, pending)
    if (
        head.sequence is not None
        and head.sequence >= first
        and head.msg_id == await source.previous_msg_id(head.sequence + 1)
    ):
        rest = [message for message in pending if message.sequence > head.sequence]
        if rest and rest[0].sequence != head.sequence + 1:
            raise StreamMismatch(f"the outbox has no row {head.sequence + 1} after the stream's last message")
        return Plan(head.sequence, head.stream_sequence, rest)
    raise StreamMismatch(
        f"the stream's last message (stream sequence {head.stream_sequence}, id {head.msg_id!r}, outbox sequence "
        f"{head.sequence}) is neither the outbox's message before {first} nor one of its messages after it"
    )


class PipelinedJetStream(JetStreamContext):
    """A JetStream context whose `publish_async` futures always complete.

    nats-py 2.16 raises the server's error inside its reply handler instead of setting it on the
    future, so a refused message's future stays pending forever (nats-io/nats.py#985); and a
    `publish_async` that raises (connection closed, payload over the server's limit) leaves its
    future registered, holding one in-flight slot for ever. Both are repaired here.
    """

    async def _handle_async_reply(self, msg: Msg) -> None:
        token = msg.subject[len(self._nc._inbox_prefix) + 22 + 2 :]  # as the parent derives it
        future = self._publish_async_futures.get(token)
        try:
            await super()._handle_async_reply(msg)
        except APIError as error:
            if future is not None and not future.done():
                future.set_exception(error)

    async def publish_async(self, *args: Any, **kwargs: Any) -> asyncio.Future[PubAck]:
        registered = len(self._publish_async_futures)
        try:
            return await super().publish_async(*args, **kwargs)
        except BaseException:
            if len(self._publish_async_futures) > registered:  # the one this call registered, last in the dict
                self._publish_async_futures[next(reversed(self._publish_async_futures))].cancel()  # frees its slot
            raise


@dataclass(frozen=True)
class Published:
    """What the stream acknowledged of a batch."""

    acknowledged: int  # how many rows, from the first (the longest acknowledged prefix)
    last_sequence: int | None  # the outbox sequence of the last of them (None: none)
    failure: BaseException | None  # why the next row was not acknowledged (None: every row was)
    duplicates: bool = False  # some were already on the stream (another relay stored them)


def unpublishable(error: BaseException | None) -> str | None:
    """Why a row can never be published, if the error says so: no retry changes the server's maximum
    payload, the stream's maximum message size or a subject the client refuses. None for every other
    error (timeouts, no responders, a connection lost, the stream moved): those are retried."""
    if isinstance(error, MaxPayloadError):
        return f"over the server's maximum payload: {error.args[0] if error.args else error}"
    if isinstance(error, BadSubjectError):
        return "the subject is not a valid NATS subject"
    if isinstance(error, APIError) and error.err_code == MESSAGE_TOO_LARGE:
        return f"over the stream's maximum message size: {error.description}"
    return None


def wire_size(payload: bytes, headers: dict[str, str]) -> int:
    """What the server counts against its `max_payload`: the payload and the header block (the client
    checks only the payload; a message over the limit by its headers makes the server close the
    connection, which no retry would ever get past)."""
    block = sum(len(key.encode()) + len(value.encode()) + 4 for key, value in headers.items())
    return len(payload) + len(b"NATS/1.0\r\n") + block + 2


def is_out_of_place(error: BaseException | None) -> bool:
    """A refusal because the stream is not where the row expected it: another relay stored rows meanwhile,
    or a row before it was refused or lost. The next pass anchors again."""
    return isinstance(error, APIError) and error.err_code == WRONG_LAST_SEQUENCE


async def publish_batch(
    js: JetStreamContext,
    stream_name: str,
    pending: Sequence[Pending],
    *,
    after: int,
    max_in_flight: int = 500,
    ack_timeout: float = 5.0,
    max_payload: int | None = None,
) -> Published:
    """Publish rows in order, up to `max_in_flight` unacknowledged, row i expecting the stream's last
    sequence to be after+i. A row over `max_payload` (the server's, counted as it counts it) is not
    sent: it fails with `MaxPayloadError`, as if the client had refused it.

    Stops sending at the first refusal seen (the rows after it would be refused too), waits up to
    `ack_timeout` for the acknowledgements, and returns the acknowledged prefix. It waits only when
    the window is full: until then messages pile up in the client's buffer and leave in few writes
    (nats-py flushes whenever the publisher yields; with `wait_stall` set it would yield every message).
    The JetStream context must allow at least `max_in_flight` pending (`publish_async_max_pending`)."""
    futures: list[asyncio.Future[PubAck]] = []
    refused = False
    send_failure: BaseException | None = None

    def note(future: asyncio.Future[PubAck]) -> None:
        nonlocal refused
        if not future.cancelled() and future.exception() is not None:
            refused = True

    try:
        for offset, message in enumerate(pending):
            if offset >= max_in_flight and not (oldest := futures[offset - max_in_flight]).done():
                await asyncio.wait([oldest], timeout=ack_timeout)
                if not oldest.done():
                    raise TimeoutError(f"no acknowledgement for stream sequence {after + offset - max_in_flight + 1}")
            if refused:
                break
            headers = {MSG_ID: message.msg_id, EXPECTED_LAST_SEQUENCE: str(after + offset)}
            if max_payload is not None and wire_size(message.payload, {**headers, EXPECTED_STREAM: stream_name}) > (
                max_payload
            ):
                raise MaxPayloadError(f"{len(message.payload)} bytes and headers, the server takes {max_payload}")
            future = await js.publish_async(message.subject, message.payload, stream=stream_name, headers=headers)
            future.add_done_callback(note)
            futures.append(future)
    except Exception as error:  # connection lost, no acknowledgements, payload over the server's limit
        send_failure = error
    failure: BaseException | None = None
    acknowledged, duplicates = 0, False
    try:
        if futures:
            await asyncio.wait(futures, timeout=ack_timeout)
        for offset, future in enumerate(futures):
            if not future.done():
                failure = TimeoutError(f"no acknowledgement for stream sequence {after + offset + 1}")
                break
            if future.cancelled():
                failure = ConnectionError(f"the publish of stream sequence {after + offset + 1} was abandoned")
                break
            if future.exception() is not None:
                failure = future.exception()
                break
            ack = future.result()
            if not ack.duplicate and ack.seq != after + offset + 1:  # never, by the server's check; never trusted
                failure = StreamMismatch(f"stored at stream sequence {ack.seq}, expected {after + offset + 1}")
                break
            acknowledged, duplicates = acknowledged + 1, duplicates or bool(ack.duplicate)
        else:
            failure = send_failure
    finally:
        for future in futures:
            if not future.done():
                future.cancel()
    last = pending[acknowledged - 1].sequence if acknowledged else None
    return Published(acknowledged, last, failure, duplicates)


class Relay:
    """Publishes an outbox to a stream until stopped: reconnects and backs off when NATS or the database fails."""

    def __init__(
        self,
        source: OutboxSource,
        nats_url: str,
        *,
        client_name: str,
        stream_name: str,
        ensure_stream: EnsureStream,
        withheld_subject: str,
        batch: int = 500,
        max_in_flight: int = 500,
        write_lock: asyncio.Lock | None = None,
        sequence_of: Callable[[bytes], int] = envelope_sequence,
        ack_timeout: float = 5.0,
        idle_pause: float = 0.25,
        max_backoff: float = 5.0,
    ) -> None:
        self._source, self._nats_url, self._client_name = source, nats_url, client_name
        self._stream_name, self._ensure_stream, self._sequence_of = stream_name, ensure_stream, sequence_of
        self._withheld_subject = withheld_subject  # where placeholders go: one of the stream's subjects
        self._batch, self._max_in_flight, self._ack_timeout = batch, max_in_flight, ack_timeout
        self._idle_pause, self._max_backoff = idle_pause, max_backoff
        self._write_lock = write_lock or asyncio.Lock()  # SQLite: the process's writers queue on one lock
        self.wake = asyncio.Event()
        self._stop = asyncio.Event()
        self.nats: Client | None = None
        self._js: tuple[Client, PipelinedJetStream] | None = None
        self._stream_ensured: Client | None = None  # the connection the stream was last declared on
        self._head: StreamHead | None = None  # the stream's head as this relay's last clean pass left it
        self.published = 0  # rows that left the outbox since the start (for metrics)
        self.failures = 0  # passes that failed (NATS or the database unavailable, a mismatch)
        self.withheld = 0  # rows replaced on the stream by a placeholder since the start

    async def run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if self.nats is None or self.nats.is_closed:
                    self.nats = await connect(self._nats_url, self._client_name)
                if self._stream_ensured is not self.nats:  # again after a failure: a cluster may still elect
                    await self._ensure_stream(self._jetstream())
                    self._stream_ensured = self.nats
                published = await self.publish_pending()
            except Exception as error:  # NATS or database unavailable, or the stream does not continue the outbox
                self._head = None
                if isinstance(error, NotFoundError):
                    self._stream_ensured = None  # the stream went away: declare it again
                failures += 1
                self.failures += 1
                delay = min(self._max_backoff, 0.5 * 2 ** min(failures - 1, 10))
                level = logging.ERROR if isinstance(error, StreamMismatch) else logging.WARNING
                log.log(
                    level,
                    "relay to %s: %s: %s; retrying in %.1fs",
                    self._stream_name,
                    type(error).__name__,
                    error,
                    delay,
                )
                await self._sleep(delay)
                continue
            failures = 0
            if published < self._batch:  # the outbox is drained: a pass more would only find it empty
                await self._pause(self._idle_pause)  # `wake` set by a commit meanwhile ends it at once

    async def publish_pending(self) -> int:
        """One pass: publish (or find on the stream) the next batch; how many of its rows left the outbox."""
        assert self.nats is not None
        js = self._jetstream()
        pending = await self._source.pending(self._batch)
        if not pending:
            return 0
        plan = self._continuing(pending)
        known_head = plan is not None
        if plan is None:
            plan = await plan_batch(self._source, await stream_head(js, self._stream_name, self._sequence_of), pending)
        self._head = None  # known again only after a clean pass
        result = Published(0, None, None)
        if known_head and len(plan.to_publish) > 1:
            # the first row alone: stored at its place, it proves the head as reading it would; only then
            # the rest in flight (a head gone stale under a foreign message could let later rows match)
            result = await self._publish(js, plan.to_publish[:1], plan.after)
            if result.acknowledged and not result.duplicates:
                rest = await self._publish(js, plan.to_publish[1:], plan.after + 1)
                through = rest.last_sequence or result.last_sequence
                result = Published(1 + rest.acknowledged, through, rest.failure, rest.duplicates)
        elif plan.to_publish:
            result = await self._publish(js, plan.to_publish, plan.after)
        up_to = max(plan.ahead_to or 0, result.last_sequence or 0)
        if plan.to_publish and result.acknowledged == len(plan.to_publish) and not result.duplicates:
            last = plan.to_publish[-1]
            self._head = StreamHead(plan.after + result.acknowledged, last.msg_id, last.sequence)
        reason = unpublishable(result.failure)
        if reason is not None:
            refused = plan.to_publish[result.acknowledged]  # the failure is always the row after the prefix
            try:
                placed = await self._withhold(js, refused, plan.after + result.acknowledged, reason)
            except Exception as error:  # the prefix is still marked; the next pass tries again
                result = Published(result.acknowledged, result.last_sequence, error)
            else:
                if placed:
                    up_to, result = refused.sequence, Published(result.acknowledged + 1, refused.sequence, None)
        if up_to:
            async with self._write_lock:
                await self._source.mark_published(up_to)
        marked = sum(1 for message in pending if message.sequence <= up_to)
        self.published += marked
        if result.failure is not None and not is_out_of_place(result.failure):
            if marked == 0:
                raise result.failure
            log.warning("relay to %s: stopped after sequence %d: %s", self._stream_name, up_to, result.failure)
        return marked

    async def _publish(self, js: JetStreamContext, rows: list[Pending], after: int) -> Published:
        assert self.nats is not None
        return await publish_batch(
            js,
            self._stream_name,
            rows,
            after=after,
            max_in_flight=self._max_in_flight,
            ack_timeout=self._ack_timeout,
            max_payload=self.nats.max_payload,
        )

    def _continuing(self, pending: list[Pending]) -> Plan | None:
        """The plan without asking the stream, when this relay's last pass stored every row of its batch
        at its place and the batch now starts right after them. A head gone stale (another relay
        published meanwhile) costs no more than a refusal: the server checks the first row's expected
        last sequence before any other row is sent, the refusal drops the head, and the next pass
        anchors on the stream again."""
        head = self._head
        if head is None or head.sequence is None or pending[0].sequence != head.sequence + 1:
            return None
        return Plan(None, head.stream_sequence, pending)

    async def _withhold(self, js: JetStreamContext, message: Pending, after: int, reason: str) -> bool:
        """Put a placeholder in the row's place (right after stream sequence `after`), recorded first;
        True once the stream holds it. Anything but its acknowledgement is left to the next pass."""
        original = EventEnvelope.from_bytes(message.payload)
        withheld = EventWithheld(
            sequence=message.sequence,
            event_id=message.msg_id,
            event_type=original.type,
            event_subject=original.subject,
            nats_subject=message.subject,
            event_sha256=event_sha256(message.payload),
            size=len(message.payload),
            reason=reason,
        )
        async with self._write_lock:
            await self._source.withhold(message, withheld)
        headers = {MSG_ID: message.msg_id, EXPECTED_LAST_SEQUENCE: str(after)}
        payload = withheld_envelope(original, withheld).to_bytes()
        future = await js.publish_async(self._withheld_subject, payload, stream=self._stream_name, headers=headers)
        await asyncio.wait([future], timeout=self._ack_timeout)
        if not future.done():
            future.cancel()
            raise TimeoutError(f"no acknowledgement for the placeholder of sequence {message.sequence}")
        ack = future.result()  # a refusal (the stream moved meanwhile) raises: the next pass anchors again
        if ack.duplicate or ack.seq != after + 1:
            return False  # stored already, by another relay: the next pass finds the stream ahead
        self.withheld += 1
        log.error(
            "relay to %s: event %s (%s, %d bytes) cannot be published (%s); withheld, a placeholder "
            "stands in its place at stream sequence %d",
            self._stream_name,
            message.sequence,
            original.type,
            withheld.size,
            reason,
            ack.seq,
            extra={"sequence": message.sequence, "event_id": message.msg_id, "event_type": original.type},
        )
        return True

    def _jetstream(self) -> PipelinedJetStream:
        assert self.nats is not None
        if self._js is None or self._js[0] is not self.nats:
            js = PipelinedJetStream(self.nats, publish_async_max_pending=2 * self._max_in_flight)  # never the limit
            self._js = (self.nats, js)
        return self._js[1]

    async def _pause(self, seconds: float) -> None:
        """Idle: until something is committed (`wake`) or the pause ends."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout=seconds)
        self.wake.clear()

    async def _sleep(self, seconds: float) -> None:
        """Back off: commits do not cut it short (they would turn an outage into a busy loop), stopping does."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        await close_quietly(self.nats)
