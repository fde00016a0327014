"""The ingest event log on real SQLite and PostgreSQL: append-only, idempotent, gap-free in commit order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_common.db import make_engine, session_factory
from kpi_common.migrations import upgrade
from kpi_core.commands import RecordMeasurement, RegisterCatalogueVersion, RegisterPeerGroup
from kpi_core.events import MeasurementRecorded
from kpi_ingest import MIGRATIONS_DIR
from kpi_ingest.adapters.catalogue_files import bundled_peer_group_documents
from kpi_ingest.adapters.event_store import EventStore
from kpi_ingest.service_layer import handlers
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.errors import IdempotencyConflict, InvalidMeasurement
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_ingest.service_layer.units import RegistryCache, register_peer_group
from tests.conftest import fixture_catalogue


@pytest.fixture
def migrated_url(database_url: str) -> str:
    upgrade(MIGRATIONS_DIR, database_url)
    return database_url


@pytest.fixture
async def sessions(migrated_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(migrated_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def uow(sessions: async_sessionmaker[AsyncSession]) -> UnitOfWork:
    return UnitOfWork(sessions)


@pytest.fixture
async def registry(uow: UnitOfWork) -> CatalogueRegistry:
    catalogues = CatalogueRegistry()
    command = RegisterCatalogueVersion(document=fixture_catalogue(), registered_by="admin")
    await handlers.register_catalogue_version(command, uow, catalogues)
    provinces = next(units for units in bundled_peer_group_documents() if units["id"] == "provinces")
    await register_peer_group(RegisterPeerGroup(document=provinces, registered_by="admin"), uow)
    return catalogues


def measurement(key: str = "k1", unit: str = "gia-lai", a: int = 30, b: int = 100) -> RecordMeasurement:
    return RecordMeasurement(
        catalogue_id="mini-dti",
        catalogue_version="1.0",
        period=2024,
        unit_id=unit,
        indicator="3.1",
        inputs={"a": a, "b": b},
        idempotency_key=key,
        submitted_by="gia-lai-key",
    )


async def count_events(uow: UnitOfWork) -> int:
    async with uow:
        return len(await uow.events.read_after(0, 10_000))


async def test_the_database_refuses_to_update_or_delete_an_event(uow: UnitOfWork, registry: CatalogueRegistry) -> None:
    await handlers.record_measurement(measurement(), uow, registry, RegistryCache())
    for statement in ("UPDATE events SET actor = 'mallory'", "DELETE FROM events"):
        async with uow:
            with pytest.raises(DBAPIError, match="append-only"):
                await uow.events.session.execute(text(statement))
    async with uow:
        actors = (await uow.events.session.execute(text("SELECT DISTINCT actor FROM events"))).scalars().all()
    assert sorted(actors) == ["admin", "gia-lai-key"]


async def test_repeated_idempotency_key_with_the_same_body_returns_the_first_event(
    uow: UnitOfWork, registry: CatalogueRegistry
) -> None:
    first = await handlers.record_measurement(measurement(), uow, registry, RegistryCache())
    again = await handlers.record_measurement(measurement(), uow, registry, RegistryCache())
    assert not first.replayed and again.replayed
    assert again.event.envelope.id == first.event.envelope.id
    assert await count_events(uow) == 3  # the catalogue and unit list registrations and one measurement


async def test_repeated_idempotency_key_with_another_body_is_a_conflict(
    uow: UnitOfWork, registry: CatalogueRegistry
) -> None:
    await handlers.record_measurement(measurement(a=30), uow, registry, RegistryCache())
    with pytest.raises(IdempotencyConflict):
        await handlers.record_measurement(measurement(a=31), uow, registry, RegistryCache())
    assert await count_events(uow) == 3


async def test_concurrent_requests_with_one_idempotency_key_store_one_event(
    uow: UnitOfWork, sessions: async_sessionmaker[AsyncSession], registry: CatalogueRegistry
) -> None:
    results = await asyncio.gather(
        *(handlers.record_measurement(measurement(), UnitOfWork(sessions), registry, RegistryCache()) for _ in range(8))
    )
    assert len({result.event.envelope.id for result in results}) == 1
    assert sum(not result.replayed for result in results) == 1
    assert await count_events(uow) == 3


async def test_invalid_inputs_are_refused_and_nothing_is_stored(uow: UnitOfWork, registry: CatalogueRegistry) -> None:
    with pytest.raises(InvalidMeasurement) as refused:
        await handlers.record_measurement(measurement(a=120, b=100), uow, registry, RegistryCache())
    assert [error.field for error in refused.value.errors] == ["inputs.a"]
    assert await count_events(uow) == 2


async def test_a_rolled_back_append_leaves_no_gap_in_the_sequence(uow: UnitOfWork, registry: CatalogueRegistry) -> None:
    event = MeasurementRecorded(
        catalogue_id="mini-dti",
        catalogue_version="1.0",
        period=2024,
        unit_id="x",
        indicator="3.1",
        inputs={},
        submitted_by="t",
    )
    async with uow:
        await uow.events.append(event)  # no commit: rolled back on exit
    async with uow:
        stored = await uow.events.append(event)
        await uow.commit()
    assert stored.sequence == 3  # after the catalogue and the unit list


async def test_readers_following_the_cursor_never_skip_an_event_under_concurrent_writers(migrated_url: str) -> None:
    """Writers take sequences and commit after random delays; a reader follows `after=cursor` meanwhile."""
    engine = (
        make_engine(migrated_url, pool_size=20, max_overflow=10)
        if "postgresql" in migrated_url
        else make_engine(migrated_url)
    )
    sessions = session_factory(engine)
    writers, done = 40, asyncio.Event()

    async def write(index: int) -> None:
        unit = f"u{index % 2}"
        event = MeasurementRecorded(
            catalogue_id="c",
            catalogue_version="1",
            period=2024,
            unit_id=unit,
            indicator="1",
            inputs={},
            submitted_by="t",
        )
        async with sessions() as session:
            await EventStore(session).append(event)
            await asyncio.sleep(random.uniform(0, 0.05))  # a slow transaction holding its sequence
            await session.commit()

    async def tail(**filters: str) -> list[int]:
        seen: list[int] = []
        cursor = 0
        while True:
            writers_finished = done.is_set()  # read before the page: a page read after it misses nothing
            async with sessions() as session:
                batch, cursor = await EventStore(session).page(cursor, 3, **filters)
                await session.rollback()
            seen += [stored.sequence for stored in batch]
            if writers_finished and not batch:
                return seen
            await asyncio.sleep(0.001)

    everything = asyncio.create_task(tail())
    one_unit = asyncio.create_task(tail(unit_id="u1"))
    await asyncio.gather(*(write(index) for index in range(writers)))
    done.set()
    seen, seen_u1 = await everything, await one_unit
    await engine.dispose()
    assert seen == list(range(1, writers + 1))
    async with session_factory(make_engine(migrated_url))() as session:
        expected_u1 = [stored.sequence for stored in await EventStore(session).read_after(0, 1000, unit_id="u1")]
    assert seen_u1 == expected_u1 and len(expected_u1) == writers // 2


async def test_a_batch_append_fits_every_statement_within_the_parameter_limit(
    uow: UnitOfWork, registry: CatalogueRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a batch is many rows a statement: a database that binds fewer parameters (999
    before SQLite 3.32) gets more statements, and every event still has its sequence and chain link."""
    from kpi_common import bulk_writes
    from kpi_ingest.adapters import event_store
    from kpi_ingest.service_layer import audit

    statements: list[str] = []
    limit = 3 * len(event_store.EVENT_COLUMNS) + 1  # three events a statement
    monkeypatch.setattr(bulk_writes, "_sqlite_parameter_limit", lambda: limit)
    batch = [
        MeasurementRecorded(
            catalogue_id="mini-dti",
            catalogue_version="1.0",
            period=2024,
            unit_id="gia-lai",
            indicator="3.1",
            inputs={"a": str(value), "b": "100"},
            submitted_by="gia-lai-key",
        )
        for value in range(11)
    ]
    async with uow.writing():
        connection = await uow.session.connection()
        dialect = connection.dialect.name
        sync = connection.sync_connection
        assert sync is not None
        event.listen(sync, "before_cursor_execute", lambda *args: statements.append(args[2]))
        sequences = await uow.events.append_many(batch, chunk=5)
        await uow.commit()
    async with uow:
        stored = await uow.events.read_after(sequences[0] - 1, 100)
    assert list(sequences) == [found.sequence for found in stored] and len(stored) == 11
    assert [found.envelope.data["inputs"]["a"] for found in stored] == [str(value) for value in range(11)]
    assert (await audit.verify_log(uow)).first_break is None
    inserts = [sql for sql in statements if sql.startswith("INSERT INTO events")]
    if dialect == "sqlite":  # chunks of 5: 3 + 2, 3 + 2, 1
        assert [sql.count("),(") + 1 for sql in inserts] == [3, 2, 3, 2, 1]


async def test_a_batch_append_that_fails_in_its_second_chunk_stores_nothing(
    uow: UnitOfWork, registry: CatalogueRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next chunk is built on a worker thread while this one is inserted: a failing insert
    leaves no event, no outbox row and no move of the counter, and the log goes on from where it was."""
    from kpi_ingest.adapters import event_store
    from kpi_ingest.service_layer import audit

    batch = [
        MeasurementRecorded(
            catalogue_id="mini-dti",
            catalogue_version="1.0",
            period=2024,
            unit_id="gia-lai",
            indicator="3.1",
            inputs={"a": str(value), "b": "100"},
            submitted_by="gia-lai-key",
        )
        for value in range(11)
    ]
    async with uow:
        head_before, outbox_before = await uow.events.chain_head(), await uow.events.outbox_size()
    inserted = event_store.write_rows
    calls = 0

    async def failing_on_the_second_chunk(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # the first chunk's events and outbox rows went in; the second chunk's events fail
            raise RuntimeError("the database went away")
        await inserted(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(event_store, "write_rows", failing_on_the_second_chunk)
    with pytest.raises(RuntimeError, match="went away"):
        async with uow.writing():
            await uow.events.append_many(batch, chunk=5)
            await uow.commit()
    monkeypatch.setattr(event_store, "write_rows", inserted)
    async with uow:
        assert await uow.events.chain_head() == head_before
        assert await uow.events.read_after(head_before[0], 100) == []
        assert await uow.events.outbox_size() == outbox_before
    async with uow.writing():
        sequences = await uow.events.append_many(batch, chunk=5)
        await uow.commit()
    assert sequences[0] == head_before[0] + 1
    assert (await audit.verify_log(uow)).first_break is None
