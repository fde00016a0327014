"""A projection never stalls for good, whatever the stream does (issue 15): an event that reaches
the stream late, long after the ones behind it, and an event that cannot be applied. On the old
main the first stalled forever ("not yet" naks ran out the server's 20 deliveries and the events
behind the late one were dropped); both run here on a real nats-server with JetStream."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import nats
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common import streams
from kpi_common.migrations import upgrade
from kpi_common.projection_metrics import projection_probe
from kpi_common.projection_service import ProjectionService, build_projection_service
from kpi_core.events import EventEnvelope, MeasurementRecorded, envelope_for
from kpi_reporting import MIGRATIONS_DIR as REPORTING_MIGRATIONS
from kpi_reporting.adapters import orm
from tests.integration.helpers import reporting_history, wait_until

Apply = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]


def event(sequence: int) -> EventEnvelope:
    measured = MeasurementRecorded(
        catalogue_id="mini-dti",
        catalogue_version="1.0",
        period=2024,
        unit_id="gia-lai",
        indicator="1.1",
        inputs={"a": str(sequence)},
        submitted_by="t",
    )
    return envelope_for(measured, event_id=str(uuid.uuid4()), sequence=sequence, recorded_at=datetime.now(UTC))


async def publish(nats_url: str, sequences: list[int]) -> None:
    client = await nats.connect(nats_url)
    js = client.jetstream()
    await streams.ensure_stream(js)
    for sequence in sequences:
        envelope = event(sequence)
        await js.publish(f"kpi.test.{sequence}", envelope.to_bytes(), headers={"Nats-Msg-Id": envelope.id})
    await client.close()


def reporting(nats_url: str, tmp_path: Path, wrap: Callable[[Apply], Apply] | None = None) -> ProjectionService:
    url = f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"
    upgrade(REPORTING_MIGRATIONS, url)
    history = reporting_history()
    apply = history.apply
    return build_projection_service(
        database_url=url,
        nats_url=nats_url,
        consumer="reporting",
        replicas=1,
        positions=orm.consumer_positions,
        dead_letters=orm.dead_letters,
        apply=wrap(apply) if wrap else apply,
        finish_batch=history.finish_batch,
    )


async def scraped(service: ProjectionService) -> dict[str, float]:
    """The consumer's metrics as Prometheus reads them (one consumer here: name -> value)."""
    families = await projection_probe(service, orm.dead_letters)()
    return {family.name: family.samples[0].value for family in families}


async def position(service: ProjectionService) -> int:
    async with service.sessions() as session:
        return await service.tracking.position(session)


async def test_an_event_that_reaches_the_stream_late_is_waited_for_and_nothing_behind_it_is_lost(
    nats_url: str, tmp_path: Path
) -> None:
    await publish(nats_url, [1, 2, 3, 4, 5, *range(7, 31)])  # 6 is late
    service = reporting(nats_url, tmp_path)
    service.start()
    try:

        async def at(expected: int) -> Callable[[], Awaitable[bool]]:
            async def reached() -> bool:
                return await position(service) == expected

            return reached

        await wait_until(await at(5))
        await asyncio.sleep(12)  # past the old nak window: 20 deliveries, 0.5 s apart
        assert await position(service) == 5
        assert service.follower.stats.stalled_for() >= 10  # what metrics and, past a minute, readiness show
        waiting = await scraped(service)
        assert waiting["kpi_consumer_position"] == 5 and waiting["kpi_consumer_lag_events"] > 0
        assert waiting["kpi_consumer_stalled_seconds"] >= 10 and waiting["kpi_consumer_lag_seconds"] >= 10
        await publish(nats_url, [6])
        await wait_until(await at(30), timeout=10)
        caught_up = await scraped(service)
        assert caught_up["kpi_consumer_lag_events"] == 0 and caught_up["kpi_consumer_stalled_seconds"] == 0
        assert caught_up["kpi_consumer_applied_events"] == 30
        async with service.sessions() as session:
            rows = await session.scalar(select(func.count()).select_from(orm.measurement_history))
        assert rows == 30
    finally:
        await service.close()


async def test_an_event_that_cannot_be_applied_is_dead_lettered_and_the_rest_go_on(
    nats_url: str, tmp_path: Path
) -> None:
    attempts = {"poison": 0}

    def failing_on_7(apply: Apply) -> Apply:
        async def wrapped(session: AsyncSession, envelope: EventEnvelope) -> None:
            if envelope.sequence == 7:
                attempts["poison"] += 1
                raise ValueError("this event cannot be applied")
            await apply(session, envelope)

        return wrapped

    await publish(nats_url, list(range(1, 21)))
    service = reporting(nats_url, tmp_path, failing_on_7)
    service.start()
    try:

        async def caught_up() -> bool:
            return await position(service) == 20

        await wait_until(caught_up, timeout=20)
        async with service.sessions() as session:
            letters = (await session.execute(select(orm.dead_letters))).all()
            rows = await session.scalar(select(func.count()).select_from(orm.measurement_history))
    finally:
        await service.close()
    assert [(letter.sequence, letter.reason) for letter in letters] == [(7, "ValueError: this event cannot be applied")]
    assert rows == 19 and attempts["poison"] >= 2  # retried before it was given up


async def test_an_event_met_by_a_database_away_is_retried_and_never_dead_lettered(
    nats_url: str, tmp_path: Path
) -> None:
    from sqlalchemy.exc import OperationalError

    from kpi_common.consumer import MAX_ATTEMPTS

    failures = {"left": MAX_ATTEMPTS + 2}  # more than an event's attempts before it is dead-lettered

    def database_away_on_7(apply: Apply) -> Apply:
        async def wrapped(session: AsyncSession, envelope: EventEnvelope) -> None:
            if envelope.sequence == 7 and failures["left"]:
                failures["left"] -= 1
                raise OperationalError("INSERT ...", {}, Exception("database is locked"))
            await apply(session, envelope)

        return wrapped

    await publish(nats_url, list(range(1, 11)))
    service = reporting(nats_url, tmp_path, database_away_on_7)
    service.start()
    try:

        async def caught_up() -> bool:
            return await position(service) == 10

        await wait_until(caught_up, timeout=60)
        async with service.sessions() as session:
            letters = (await session.execute(select(orm.dead_letters))).all()
            rows = await session.scalar(select(func.count()).select_from(orm.measurement_history))
    finally:
        await service.close()
    assert letters == [] and rows == 10 and failures["left"] == 0
