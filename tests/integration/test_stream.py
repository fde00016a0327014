"""The outbox relay and the projection consumers on a real nats-server with JetStream."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import nats
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common import streams
from kpi_common.migrations import upgrade
from kpi_common.projection_service import build_projection_service
from kpi_core.events import EventEnvelope
from kpi_ingest.adapters.event_store import EventStore
from kpi_ingest.entrypoints.outbox_relay import OutboxRelay
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_launcher import embedded
from kpi_reporting import MIGRATIONS_DIR as REPORTING_MIGRATIONS
from kpi_reporting.adapters import orm as reporting_orm
from tests.conftest import ROOT
from tests.integration.helpers import outbox_size, record_some, reporting_history, wait_until


async def stream_sequences(nats_url: str) -> list[tuple[int, str | None]]:
    """Every message on the stream, in stream order: (event sequence, Nats-Msg-Id)."""
    client = await nats.connect(nats_url)
    js = client.jetstream()
    info = await js.stream_info(streams.STREAM_NAME)
    found = []
    for stream_sequence in range(1, info.state.last_seq + 1):
        message = await js.get_msg(streams.STREAM_NAME, stream_sequence)
        envelope = EventEnvelope.from_bytes(message.data or b"")
        found.append((envelope.sequence, (message.headers or {}).get("Nats-Msg-Id")))
        assert (message.headers or {}).get("Nats-Msg-Id") == envelope.id
    await client.close()
    return found


async def test_relay_publishes_every_event_in_sequence_order_with_its_id(nats_url: str, ingest_sessions) -> None:  # type: ignore[no-untyped-def]
    sessions, registry = ingest_sessions
    await record_some(lambda: UnitOfWork(sessions), registry, 30)
    relay = OutboxRelay(sessions, nats_url, batch=7)
    task = asyncio.create_task(relay.run())

    async def drained() -> bool:
        return await outbox_size(sessions) == 0

    await wait_until(drained)
    await relay.stop()
    task.cancel()
    assert [sequence for sequence, _ in await stream_sequences(nats_url)] == list(range(1, 33))


async def test_a_nats_outage_delays_delivery_and_loses_nothing(tmp_path: Path, ingest_sessions) -> None:  # type: ignore[no-untyped-def]
    sessions, registry = ingest_sessions
    port = embedded.free_port()
    nats_url = f"nats://127.0.0.1:{port}"
    relay = OutboxRelay(sessions, nats_url)
    task = asyncio.create_task(relay.run())
    await record_some(lambda: UnitOfWork(sessions), registry, 10)
    await asyncio.sleep(1.5)  # the relay has been failing to connect all along
    assert await outbox_size(sessions) == 12
    server = embedded.start_nats(port, tmp_path / "late-nats")
    try:

        async def drained() -> bool:
            return await outbox_size(sessions) == 0

        await wait_until(drained, timeout=20)
        await relay.stop()
        task.cancel()
        assert [sequence for sequence, _ in await stream_sequences(nats_url)] == list(range(1, 13))
    finally:
        embedded.stop(server)


async def test_republishing_after_a_relay_crash_is_deduplicated_by_event_id(nats_url: str, ingest_sessions) -> None:  # type: ignore[no-untyped-def]
    sessions, registry = ingest_sessions
    await record_some(lambda: UnitOfWork(sessions), registry, 5)
    client = await nats.connect(nats_url)
    await streams.ensure_stream(client.jetstream())
    async with sessions() as session:
        pending = await EventStore(session).pending_outbox(100)
    for message in pending[:3]:  # a relay that published three, then died before marking them
        await client.jetstream().publish(message.subject, message.payload, headers={"Nats-Msg-Id": message.msg_id})
    await client.close()
    relay = OutboxRelay(sessions, nats_url)
    relay.nats = await nats.connect(nats_url)
    assert await relay.publish_pending() == 7
    await relay.stop()
    assert [sequence for sequence, _ in await stream_sequences(nats_url)] == list(range(1, 8))


class CountingApply:
    """Wraps a projection's apply to count how often each sequence was applied (committed or not)."""

    def __init__(self, inner, fail_after: int | None = None) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.applied, self.fail_after = inner, Counter[int](), fail_after

    async def __call__(self, session: AsyncSession, envelope: EventEnvelope) -> None:
        await self.inner(session, envelope)
        self.applied[envelope.sequence] += 1


async def test_consumer_resumes_after_a_stop_mid_stream_without_loss_or_duplicates(
    nats_url: str, ingest_sessions, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sessions, registry = ingest_sessions
    await record_some(lambda: UnitOfWork(sessions), registry, 60)
    relay = OutboxRelay(sessions, nats_url)
    relay_task = asyncio.create_task(relay.run())
    reporting_url = f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"
    upgrade(REPORTING_MIGRATIONS, reporting_url)
    applied: Counter[int] = Counter()

    def service():  # type: ignore[no-untyped-def]
        history = reporting_history()
        counting = CountingApply(history.apply)
        counting.applied = applied
        return build_projection_service(
            database_url=reporting_url,
            nats_url=nats_url,
            consumer="reporting",
            replicas=1,
            positions=reporting_orm.consumer_positions,
            dead_letters=reporting_orm.dead_letters,
            apply=counting,
            finish_batch=history.finish_batch,
        )

    async def history_rows(projection) -> int:  # type: ignore[no-untyped-def]
        async with projection.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(reporting_orm.measurement_history)) or 0)

    first = service()
    first.start()

    async def partway() -> bool:
        return sum(applied.values()) >= 10

    await wait_until(partway)
    await first.close()  # stopped mid-stream
    stopped_at = sum(applied.values())
    # it may finish what it holds (all 62 on a fast machine); the 20 recorded next arrive while it is down
    assert 10 <= stopped_at <= 62
    await record_some(lambda: UnitOfWork(sessions), registry, 20, start=60)  # more arrive while it is down
    second = service()
    second.start()

    async def caught_up() -> bool:
        async with second.sessions() as session:
            return await second.tracking.position(session) == 82

    await wait_until(caught_up, timeout=30)
    rows = await history_rows(second)
    await second.close()
    await relay.stop()
    relay_task.cancel()
    assert sorted(applied) == list(range(1, 83))
    assert set(applied.values()) == {1}
    assert rows == 80


def test_deploy_declarations_match_the_code() -> None:
    declared = json.loads((ROOT / "deploy" / "nats" / "jetstream.json").read_text(encoding="utf-8"))
    assert declared == json.loads(json.dumps(streams.declarations(), sort_keys=True, default=str))
