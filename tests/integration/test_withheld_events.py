"""An event no retry can publish is withheld in place (issue 15), on a real nats-server whose
`max_payload` (64 KiB) is smaller than an event ingest stored: the relay puts a placeholder at the
event's position, so the events behind it reach the stream in order (stream sequence = event
sequence); the metric, the log and GET /v1/admin/withheld show it; the projections and the sync copy
move past it with a dead letter of their own; verify warns and does not call it a break. An outage
is still waited out, never withheld. On the old main the relay retried the event for ever and
nothing behind it reached the stream."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_common import streams
from kpi_common.consumer import run_consumer
from kpi_common.migrations import upgrade
from kpi_common.relay import Pending, PipelinedJetStream, publish_batch, unpublishable
from kpi_common.sync import JsonLinesCopy
from kpi_core.events import EventEnvelope, EventWithheld
from kpi_ingest import admin
from kpi_ingest.adapters.event_store import EventStore
from kpi_ingest.adapters.orm import events, withheld_events
from kpi_ingest.config import Settings as IngestSettings
from kpi_ingest.entrypoints.api.app import create_app
from kpi_ingest.entrypoints.outbox_relay import OutboxRelay
from kpi_ingest.service_layer.audit import verify_with_stream
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_launcher import embedded
from kpi_reporting.adapters import orm as reporting_orm
from kpi_scoring import MIGRATIONS_DIR as SCORING_MIGRATIONS
from kpi_scoring.adapters import orm as scoring_orm
from kpi_scoring.bootstrap import build as build_scoring
from kpi_scoring.config import Settings as ScoringSettings
from tests.integration.helpers import outbox_size, wait_until
from tests.integration.test_consumer_never_stalls import reporting
from tests.integration.test_relay_batches import REGISTERED, append_measurements, run_until_drained, stream_events

Sessions = async_sessionmaker[AsyncSession]
SMALL_PAYLOAD = 64 * 1024  # the server's max_payload here; ordinary events are below it, BIG (~100 KB) above
BIG = REGISTERED + 4 + 1  # the fifth measurement appended is the big one: event 7
TOTAL = REGISTERED + 10


@dataclass
class SmallNats:
    url: str
    port: int
    data: Path
    process: subprocess.Popen[bytes]

    def restart(self) -> None:
        """The same server again: its port, its store."""
        self.process = embedded.start_nats(self.port, self.data, max_payload="64KB")


@pytest.fixture
def small_nats(tmp_path: Path) -> Iterator[SmallNats]:
    """A nats-server that takes messages of at most 64 KiB."""
    port = embedded.free_port()
    process = embedded.start_nats(port, tmp_path / "nats", max_payload="64KB")
    server = SmallNats(f"nats://127.0.0.1:{port}", port, tmp_path / "nats", process)
    yield server
    embedded.stop(server.process)


async def placeholder_at(nats_url: str, stream_sequence: int) -> tuple[str, EventEnvelope]:
    client = await nats.connect(nats_url)
    message = await client.jetstream().get_msg(streams.STREAM_NAME, stream_sequence)
    await client.close()
    return message.subject, EventEnvelope.from_bytes(message.data or b"")


async def withheld_rows(sessions: Sessions) -> list[dict[str, object]]:
    async with sessions() as session:
        return await EventStore(session).withheld()


async def test_an_event_over_the_servers_max_payload_is_withheld_in_place_and_the_rest_follow_in_order(
    small_nats: SmallNats, ingest_sessions, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    nats_url = small_nats.url
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 10, big_at=frozenset({4}))
    relay = OutboxRelay(sessions, nats_url)
    with caplog.at_level(logging.ERROR, logger="kpi_common.relay"):
        await run_until_drained(sessions, relay, timeout=30)

    assert await stream_events(nats_url) == list(range(1, TOTAL + 1))  # stream sequence = event sequence
    subject, placeholder = await placeholder_at(nats_url, BIG)
    async with sessions() as session:
        stored = (
            await session.execute(select(events.c.event_id, events.c.event_sha256).where(events.c.sequence == BIG))
        ).one()
    assert subject == "kpi.event.withheld.v1._._"
    assert placeholder.type == EventWithheld.type and placeholder.id == stored.event_id
    withheld = EventWithheld.model_validate(placeholder.data)
    assert (withheld.sequence, withheld.event_sha256, withheld.event_type) == (
        BIG,
        stored.event_sha256,
        "vn.kpi.measurement.recorded.v1",
    )
    assert withheld.size > SMALL_PAYLOAD and "maximum payload" in withheld.reason
    [row] = await withheld_rows(sessions)
    assert (row["sequence"], row["event_sha256"], row["size"]) == (BIG, stored.event_sha256, withheld.size)
    assert relay.withheld == 1
    [line] = [record for record in caplog.records if "withheld" in record.getMessage()]
    assert line.levelno == logging.ERROR and f"event {BIG} " in line.getMessage()


async def test_the_admin_endpoint_and_the_metrics_show_a_withheld_event(
    small_nats: SmallNats, ingest_sessions, database_url: str
) -> None:  # type: ignore[no-untyped-def]
    nats_url = small_nats.url
    sessions, _ = ingest_sessions
    keys = await asyncio.to_thread(
        admin.grant_many, database_url, {"ops": (["admin"], [], ["*"], None), "rep": (["reporter"], ["*"], ["*"], None)}
    )
    await append_measurements(sessions, 10, big_at=frozenset({4}))
    app = create_app(IngestSettings(database_url=database_url, nats_url=nats_url))
    async with app.router.lifespan_context(app):  # the app's own relay publishes the outbox
        await wait_until(lambda: _drained(sessions), timeout=30)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as ingest:
            listed = await ingest.get("/v1/admin/withheld", headers={"Authorization": f"Bearer {keys['ops']}"})
            refused = await ingest.get("/v1/admin/withheld", headers={"Authorization": f"Bearer {keys['rep']}"})
            metrics = (await ingest.get("/metrics")).text
    assert listed.status_code == 200 and refused.status_code == 403
    entries = listed.json()  # the bundled catalogues the app registers at start are over 64 KiB too
    [entry] = [entry for entry in entries if entry["type"] == "vn.kpi.measurement.recorded.v1"]
    assert entry["sequence"] == BIG + 2  # the two keys granted are events 3 and 4
    assert entry["size"] > SMALL_PAYLOAD and "maximum payload" in entry["reason"]
    assert f'kpi_outbox_withheld_events{{stream="KPI_EVENTS"}} {len(entries)}.0' in metrics
    assert f'kpi_relay_withheld_events_total{{stream="KPI_EVENTS"}} {len(entries)}.0' in metrics


async def _drained(sessions: Sessions) -> bool:
    return await outbox_size(sessions) == 0


async def test_projections_and_the_sync_copy_move_past_a_withheld_event_with_a_dead_letter(
    small_nats: SmallNats, ingest_sessions, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    nats_url = small_nats.url
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 10, big_at=frozenset({4}))
    await run_until_drained(sessions, OutboxRelay(sessions, nats_url), timeout=30)
    scoring_url = f"sqlite+aiosqlite:///{tmp_path / 'scoring.db'}"
    upgrade(SCORING_MIGRATIONS, scoring_url)
    scoring = build_scoring(ScoringSettings(database_url=scoring_url, nats_url=nats_url)).service
    history = reporting(nats_url, tmp_path)
    for service in (scoring, history):
        service.start()
    try:
        for service in (scoring, history):

            async def caught_up(service=service) -> bool:  # type: ignore[no-untyped-def]
                return await service.tracking.last_applied() == TOTAL

            await wait_until(caught_up, timeout=30)
        for service, letters in ((scoring, scoring_orm.dead_letters), (history, reporting_orm.dead_letters)):
            async with service.sessions() as session:
                rows = (await session.execute(select(letters.c.sequence, letters.c.reason))).all()
            assert [row.sequence for row in rows] == [BIG]
            assert "withheld from the stream" in rows[0].reason
        async with scoring.sessions() as session:  # the latest measurement of each unit: never the withheld one
            applied = set(await session.scalars(select(scoring_orm.measurements.c.sequence)))
        assert BIG not in applied and TOTAL in applied
        async with history.sessions() as session:
            kept = set(await session.scalars(select(reporting_orm.measurement_history.c.sequence)))
        assert BIG not in kept and {BIG - 1, BIG + 1} <= kept
    finally:
        for service in (scoring, history):
            await service.close()

    copy = JsonLinesCopy(tmp_path / "national.jsonl")
    stop = asyncio.Event()
    client = await nats.connect(nats_url)
    following = asyncio.create_task(run_consumer(client.jetstream(), "national", copy, stop))
    await wait_until(lambda: _reached(copy), timeout=30)
    stop.set()
    await following
    await client.close()
    lines = [json.loads(line) for line in copy.path.read_text(encoding="utf-8").splitlines()]
    assert [line["sequence"] for line in lines] == list(range(1, TOTAL + 1))
    assert lines[BIG - 1]["type"] == EventWithheld.type  # at its position, as what it is
    [letter] = [json.loads(line) for line in copy.dead_letters.read_text(encoding="utf-8").splitlines()]
    assert letter["sequence"] == BIG and "maximum payload" in letter["reason"]


async def _reached(copy: JsonLinesCopy) -> bool:
    return copy.last_sequence == TOTAL


async def test_verify_warns_of_a_recorded_placeholder_and_breaks_on_an_unrecorded_one(
    small_nats: SmallNats, ingest_sessions
) -> None:  # type: ignore[no-untyped-def]
    nats_url = small_nats.url
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 10, big_at=frozenset({4}))
    await run_until_drained(sessions, OutboxRelay(sessions, nats_url), timeout=30)

    report = await verify_with_stream(UnitOfWork(sessions), frozenset(), nats_url)
    assert report.first_break is None and report.stream["compared"] is True
    assert report.stream["withheld"] == [BIG]
    assert any(f"withheld from the stream (sequences {BIG})" in warning for warning in report.warnings)

    async with sessions() as session:  # the record of the withholding removed: the placeholder proves nothing
        await session.execute(delete(withheld_events))
        await session.commit()
    broken = await verify_with_stream(UnitOfWork(sessions), frozenset(), nats_url)
    assert broken.first_break is not None and broken.first_break["sequence"] == BIG
    assert "does not record as withheld" in broken.first_break["problem"]


async def test_verify_breaks_on_a_withholding_recorded_for_an_event_the_stream_holds(
    small_nats: SmallNats, ingest_sessions
) -> None:  # type: ignore[no-untyped-def]
    """A forged record of a withholding (to list a published event as never sent) is found against the stream."""
    nats_url = small_nats.url
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 10, big_at=frozenset({4}))
    await run_until_drained(sessions, OutboxRelay(sessions, nats_url), timeout=30)
    published = BIG + 2
    async with sessions() as session:
        [row] = await EventStore(session).withheld()
        forged = {**row, "sequence": published, "event_sha256": "e" * 64}
        await session.execute(insert(withheld_events).values(**forged))
        await session.commit()
    broken = await verify_with_stream(UnitOfWork(sessions), frozenset(), nats_url)
    assert broken.first_break is not None and broken.first_break["sequence"] == published
    assert "records as withheld an event the stream holds" in broken.first_break["problem"]


async def test_an_outage_is_waited_out_and_only_the_unpublishable_event_is_withheld(
    small_nats: SmallNats, ingest_sessions
) -> None:  # type: ignore[no-untyped-def]
    nats_url = small_nats.url
    sessions, _ = ingest_sessions
    await append_measurements(sessions, 3)  # events 1..5
    relay = OutboxRelay(sessions, nats_url)
    task = asyncio.create_task(relay.run())
    try:
        await wait_until(lambda: _drained(sessions), timeout=30)
        embedded.stop(small_nats.process)
        await append_measurements(sessions, 10, big_at=frozenset({4}))  # stored while NATS is away
        relay.wake.set()
        await asyncio.sleep(7.0)  # past an acknowledgement's timeout: it tries, fails and backs off
        assert relay.failures > 0 and relay.withheld == 0
        assert await outbox_size(sessions) == 10 and await withheld_rows(sessions) == []
        small_nats.restart()
        await wait_until(lambda: _drained(sessions), timeout=30)
    finally:
        await relay.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await stream_events(nats_url) == list(range(1, REGISTERED + 3 + 10 + 1))
    assert [row["sequence"] for row in await withheld_rows(sessions)] == [REGISTERED + 3 + 5]
    assert relay.withheld == 1


async def test_a_message_over_max_payload_only_with_its_headers_is_refused_before_it_reaches_the_server(
    small_nats: SmallNats,
) -> None:
    nats_url = small_nats.url
    client = await nats.connect(nats_url)
    js = PipelinedJetStream(client)
    await streams.ensure_stream(js)
    envelope = b'{"sequence":1,"pad":"' + b"x" * (client.max_payload - 40) + b'"}'  # fits; with headers it does not
    assert len(envelope) <= client.max_payload
    result = await publish_batch(
        js, streams.STREAM_NAME, [Pending(1, "kpi.test", "id-1", envelope)], after=0, max_payload=client.max_payload
    )
    assert result.acknowledged == 0 and unpublishable(result.failure) is not None
    assert client.is_connected  # the server never saw it, so it never closed the connection
    await client.close()
