"""The outbox relay publishes in batches, many messages in flight, and the stream is never out of order
(kpi_common.relay), on a real nats-server with JetStream and a real ingest database.

What the wire shows is read by a plain NATS subscriber on `>`: it sees every message the relay
publishes and every acknowledgement the stream sends back, in the order the server handled them.
The relay that published one event at a time never had more than one unacknowledged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
from collections import Counter

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_common import streams
from kpi_common.relay import EnsureStream, PipelinedJetStream, Relay, StreamMismatch, publish_batch
from kpi_common.subjects import WITHHELD_EVENT_SUBJECT
from kpi_core.events import EventEnvelope, MeasurementRecorded
from kpi_ingest.adapters.event_store import EventStore
from kpi_ingest.entrypoints.outbox_relay import IngestOutbox, OutboxRelay
from tests.integration.helpers import SOME_PROVINCES, outbox_size, wait_until
from tests.integration.test_nats_cluster import cluster  # noqa: F401 - the three-node cluster fixture

Sessions = async_sessionmaker[AsyncSession]
REGISTERED = 2  # the ingest fixture registers a peer group and a catalogue: events 1 and 2
SMALL_LIMIT = 64 * 1024  # a stream limit above every ordinary event (the peer group is ~30 KB), below BIG


async def append_measurements(sessions: Sessions, count: int, *, big_at: frozenset[int] = frozenset()) -> None:
    """Append events straight to the log (one transaction); those at the given indexes are ~100 KB."""
    async with sessions() as session:
        store = EventStore(session)
        for index in range(count):
            await store.append(
                MeasurementRecorded(
                    catalogue_id="mini-dti",
                    catalogue_version="1.0",
                    period=2024,
                    unit_id=SOME_PROVINCES[index % 5],
                    indicator="3.1",
                    inputs={"a": str(index), "b": "1000"},
                    submitted_by="tester",
                    not_applicable_reason="x" * 100_000 if index in big_at else None,
                )
            )
        await session.commit()


async def stream_events(nats_url: str) -> list[int]:
    """The event sequence of every message on the stream, in stream order (each checked against its Nats-Msg-Id)."""
    client = await nats.connect(nats_url.split(","))
    js = client.jetstream()
    info = await js.stream_info(streams.STREAM_NAME)
    found = []
    for stream_sequence in range(info.state.first_seq, info.state.last_seq + 1):
        message = await js.get_msg(streams.STREAM_NAME, stream_sequence)
        envelope = EventEnvelope.from_bytes(message.data or b"")
        assert (message.headers or {}).get("Nats-Msg-Id") == envelope.id
        found.append(envelope.sequence)
    await client.close()
    return found


class Wire:
    """A plain subscriber on `>`: counts what is published to the stream's subjects and the acknowledgements."""

    def __init__(self) -> None:
        self.published: Counter[str] = Counter()  # Nats-Msg-Id -> how many times it was sent
        self.api_requests: Counter[str] = Counter()  # JetStream API requests by kind (STREAM, DIRECT, ...)
        self.in_flight = 0
        self.most_in_flight = 0
        self._client: Client | None = None

    async def start(self, nats_url: str) -> None:
        self._client = await nats.connect(nats_url.split(","))
        await self._client.subscribe(">", cb=self._seen)
        await self._client.flush()

    async def _seen(self, msg: Msg) -> None:
        if msg.subject.startswith("kpi."):
            self.published[(msg.headers or {}).get("Nats-Msg-Id", "")] += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        elif msg.subject.startswith("$JS.API."):
            self.api_requests[msg.subject.split(".")[2]] += 1
        elif msg.subject.startswith("_INBOX.") and msg.data.startswith(b"{"):
            reply = json.loads(msg.data)
            if "stream" in reply and "type" not in reply:  # a publish acknowledgement (or refusal)
                self.in_flight -= 1

    async def stop(self) -> None:
        assert self._client is not None
        await self._client.flush()
        await self._client.close()


async def connected_relay(relay: Relay, nats_url: str, ensure: EnsureStream = streams.ensure_stream) -> Relay:
    """A relay connected to a server whose stream exists, so a test can call `publish_pending` itself."""
    relay.nats = await nats.connect(nats_url.split(","))
    await ensure(relay.nats.jetstream())
    return relay


async def run_until_drained(sessions: Sessions, *relays: Relay, timeout: float = 60.0) -> None:
    tasks = [asyncio.create_task(relay.run()) for relay in relays]

    async def drained() -> bool:
        return await outbox_size(sessions) == 0

    try:
        await wait_until(drained, timeout=timeout)
    finally:
        for relay in relays:
            await relay.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def with_limit(max_msg_size: int, replicas: int = 1) -> EnsureStream:
    """An ensure_stream for KPI_EVENTS as declared, with a smaller message size limit."""

    async def ensure(js: JetStreamContext) -> None:
        config = dataclasses.replace(streams.stream_config(replicas), max_msg_size=max_msg_size)
        try:
            await js.stream_info(streams.STREAM_NAME)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)

    return ensure


def limited_relay(sessions: Sessions, nats_url: str, max_msg_size: int, replicas: int = 1) -> Relay:
    return Relay(
        IngestOutbox(sessions),
        nats_url,
        client_name="test-relay",
        stream_name=streams.STREAM_NAME,
        ensure_stream=with_limit(max_msg_size, replicas),
        withheld_subject=WITHHELD_EVENT_SUBJECT,
    )


async def test_thousands_of_events_reach_the_stream_complete_in_order_with_many_publishes_in_flight(
    nats_url: str, ingest_sessions
) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 2500)
    wire = Wire()
    await wire.start(nats_url)
    await run_until_drained(sessions, OutboxRelay(sessions, nats_url))
    await wire.stop()
    total = REGISTERED + 2500
    assert await stream_events(nats_url) == list(range(1, total + 1))
    assert sum(wire.published.values()) == total  # each sent once
    # one round trip per event would never have had two unacknowledged
    assert wire.most_in_flight >= 100


async def test_a_relay_that_stored_its_whole_batch_continues_without_asking_the_stream_for_its_head(
    nats_url: str, ingest_sessions
) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 3)
    relay = await connected_relay(OutboxRelay(sessions, nats_url), nats_url)
    assert await relay.publish_pending() == REGISTERED + 3  # the first pass anchors on the stream
    wire = Wire()
    await wire.start(nats_url)
    for _ in range(5):  # a commit, a pass: as single POSTs come in
        await append_measurements(sessions, 1)
        assert await relay.publish_pending() == 1
    await wire.stop()
    await relay.stop()
    assert wire.api_requests == Counter()  # neither the stream's info nor its last message was asked for
    assert await stream_events(nats_url) == list(range(1, REGISTERED + 3 + 5 + 1))


async def test_a_message_refused_mid_batch_is_withheld_in_place_and_the_rows_after_it_follow(
    nats_url: str, ingest_sessions
) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 60, big_at=frozenset({30}))  # event 33 exceeds the stream's limit
    relay = await connected_relay(limited_relay(sessions, nats_url, SMALL_LIMIT), nats_url, with_limit(SMALL_LIMIT))
    wire = Wire()
    await wire.start(nats_url)

    # one batch of 62: the prefix before event 33 is stored, then a placeholder in event 33's place
    assert await relay.publish_pending() == 33
    assert sum(wire.published.values()) > 34  # the rows after event 33 were in flight too, and refused
    assert await stream_events(nats_url) == list(range(1, 34))
    async with sessions() as session:
        store = EventStore(session)
        assert [message.sequence for message in await store.pending_outbox(100)] == list(range(34, 63))
        [withheld] = await store.withheld()
    assert withheld["sequence"] == 33 and "the stream's maximum message size" in str(withheld["reason"])
    assert await relay.publish_pending() == 29  # the rest follow, in order, after the placeholder
    await relay.stop()
    await wire.stop()
    assert await stream_events(nats_url) == list(range(1, 63))
    assert await outbox_size(sessions) == 0 and relay.withheld == 1


async def test_a_message_refused_on_a_three_node_cluster_is_withheld_and_the_stream_stays_writable(
    cluster: tuple[str, list[subprocess.Popen[bytes]]],  # noqa: F811 - the imported fixture
    ingest_sessions,
) -> None:  # type: ignore[no-untyped-def]
    nats_url, _ = cluster
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 40, big_at=frozenset({20}))  # event 23 exceeds the stream's limit
    # `run` retries while the cluster elects its leaders; after the refusal the stream takes the placeholder
    # and everything after it, in order
    small = limited_relay(sessions, nats_url, SMALL_LIMIT, replicas=3)
    await run_until_drained(sessions, small, timeout=60)
    assert await stream_events(nats_url) == list(range(1, REGISTERED + 40 + 1))
    assert small.withheld == 1
    client = await nats.connect(nats_url.split(","))
    placeholder = await client.jetstream().get_msg(streams.STREAM_NAME, 23)
    await client.close()
    assert EventEnvelope.from_bytes(placeholder.data or b"").type == "vn.kpi.event.withheld.v1"


async def test_two_relays_on_one_outbox_leave_each_event_on_the_stream_once_and_in_order(
    nats_url: str, ingest_sessions
) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 1500)
    total = REGISTERED + 1500
    first = await connected_relay(OutboxRelay(sessions, nats_url, batch=100), nats_url)
    second = await connected_relay(OutboxRelay(sessions, nats_url, batch=100), nats_url)
    wire = Wire()
    await wire.start(nats_url)
    while await outbox_size(sessions):  # both read the same rows and race to publish them
        await asyncio.gather(first.publish_pending(), second.publish_pending())
    await wire.stop()
    await first.stop()
    await second.stop()
    assert await stream_events(nats_url) == list(range(1, total + 1))
    assert sum(wire.published.values()) > total  # they really raced: copies were sent, and none was stored


async def test_two_running_relays_on_one_outbox_deliver_everything_once(nats_url: str, ingest_sessions) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 1500)
    relays = [OutboxRelay(sessions, nats_url, batch=50) for _ in range(2)]
    await run_until_drained(sessions, *relays)
    assert await stream_events(nats_url) == list(range(1, REGISTERED + 1500 + 1))


async def test_events_already_on_the_stream_whose_marking_was_lost_are_marked_without_publishing_again(
    nats_url: str, ingest_sessions
) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 598)
    client = await nats.connect(nats_url)
    js = PipelinedJetStream(client)
    await streams.ensure_stream(js)
    pending = await IngestOutbox(sessions).pending(300)
    crashed = await publish_batch(js, streams.STREAM_NAME, pending, after=0)  # published, then died unmarked
    assert crashed.acknowledged == 300
    await client.close()
    wire = Wire()
    await wire.start(nats_url)
    relay = await connected_relay(OutboxRelay(sessions, nats_url), nats_url)

    assert await relay.publish_pending() == 500  # 300 found on the stream, 200 published after them
    assert await relay.publish_pending() == 100
    assert await relay.publish_pending() == 0
    await relay.stop()
    await wire.stop()
    assert await stream_events(nats_url) == list(range(1, 601))
    assert sum(wire.published.values()) == 300  # only the 300 the stream did not hold were sent
    assert await outbox_size(sessions) == 0


async def test_a_relay_whose_marking_is_lost_again_and_again_still_finishes(nats_url: str, ingest_sessions) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 300)

    class ForgetfulOutbox(IngestOutbox):
        """The real outbox, whose first three markings are lost (the commit never happened)."""

        lost = 0

        async def mark_published(self, up_to_sequence: int) -> None:
            if self.lost < 3:
                self.lost += 1
                raise ConnectionError("database went away before the commit")
            await super().mark_published(up_to_sequence)

    relay = Relay(
        ForgetfulOutbox(sessions),
        nats_url,
        client_name="test-relay",
        stream_name=streams.STREAM_NAME,
        ensure_stream=streams.ensure_stream,
        withheld_subject=WITHHELD_EVENT_SUBJECT,
        batch=100,
        max_backoff=0.2,
    )
    await run_until_drained(sessions, relay)
    assert await stream_events(nats_url) == list(range(1, REGISTERED + 300 + 1))


async def test_a_stream_that_does_not_continue_the_outbox_is_neither_published_to_nor_trusted(
    nats_url: str, ingest_sessions
) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 8)
    relay = await connected_relay(OutboxRelay(sessions, nats_url), nats_url)
    assert await relay.publish_pending() == 10
    client = await nats.connect(nats_url)
    await client.jetstream().publish("kpi.other", b"{}", headers={"Nats-Msg-Id": "not-an-event"})
    await client.close()
    await append_measurements(sessions, 5)

    # the relay knows the head from its last pass and does not ask: the server refuses the first row
    # (the stream's last sequence is not the one it expects), nothing is stored; it then anchors again
    assert await relay.publish_pending() == 0
    with pytest.raises(StreamMismatch):
        await relay.publish_pending()
    await relay.stop()
    assert await outbox_size(sessions) == 5  # nothing marked
    client = await nats.connect(nats_url)
    assert (await client.jetstream().stream_info(streams.STREAM_NAME)).state.last_seq == 11  # nothing published
    await client.close()


async def test_an_outbox_ahead_of_an_empty_stream_is_not_published_out_of_place(nats_url: str, ingest_sessions) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 8)
    async with sessions() as session:  # rows 1..4 left the outbox, but the stream never got them
        await EventStore(session).mark_published(4)
        await session.commit()
    relay = await connected_relay(OutboxRelay(sessions, nats_url), nats_url)
    with pytest.raises(StreamMismatch):
        await relay.publish_pending()
    await relay.stop()
    assert await outbox_size(sessions) == 6
