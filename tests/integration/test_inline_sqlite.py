"""SQLite called in the event loop's thread (`kpi_common.inline_sqlite`), on a real database file:
statements run where they are awaited, and a lock held elsewhere is waited for without holding the
loop, for as long as the busy timeout and no longer."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_common.db import make_engine, session_factory
from kpi_common.inline_sqlite import InlineConnection, inline_connector


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER)"))
        await connection.execute(text("INSERT INTO counter VALUES (1, 0)"))
    yield engine
    await engine.dispose()


def other_writer(tmp_path: Path) -> sqlite3.Connection:
    """Another connection (as another process would be) that holds the write lock until it commits."""
    holder = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


async def test_statements_run_in_the_loops_thread(engine: AsyncEngine) -> None:
    threads = set(threading.enumerate())
    async with session_factory(engine)() as session:
        connection = await session.connection()
        raw = (await connection.get_raw_connection()).driver_connection
        assert isinstance(raw, InlineConnection)
        assert (await session.execute(text("SELECT value FROM counter"))).scalar_one() == 0
    # no worker thread was started for the connection (aiosqlite starts one per connection)
    assert set(threading.enumerate()) == threads


async def test_a_lock_held_elsewhere_is_waited_for_without_holding_the_loop(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    holder = other_writer(tmp_path)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def release_later() -> None:
        await asyncio.sleep(0.3)
        holder.execute("UPDATE counter SET value = 100 WHERE id = 1")
        holder.execute("COMMIT")

    ticking = asyncio.create_task(ticker())
    releasing = asyncio.create_task(release_later())
    started = time.monotonic()
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE counter SET value = value + 1 WHERE id = 1"))
    finally:
        ticking.cancel()
        await releasing
        holder.close()
    # the write waited for the other writer's commit, and went on after it
    assert time.monotonic() - started >= 0.25
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT value FROM counter"))).scalar_one() == 101
    # the loop ran all along: about 30 ticks of 10 ms; a busy handler sleeping in the loop's thread gives 1
    assert ticks >= 10


async def test_two_writers_of_one_process_take_turns(engine: AsyncEngine) -> None:
    """The first writer waits on the loop while holding the lock; the second must wait without
    holding the loop, or the first could never commit (with SQLite's busy handler in this thread,
    this would hang until the busy timeout and fail)."""
    sessions = session_factory(engine)
    first_holds = asyncio.Event()

    async def first() -> None:
        async with sessions() as session:
            await session.execute(text("UPDATE counter SET value = value + 1 WHERE id = 1"))
            first_holds.set()
            await asyncio.sleep(0.2)
            await session.commit()

    async def second() -> None:
        await first_holds.wait()
        async with sessions() as session:
            await session.execute(text("UPDATE counter SET value = value * 10 WHERE id = 1"))
            await session.commit()

    await asyncio.wait_for(asyncio.gather(first(), second()), timeout=5)
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT value FROM counter"))).scalar_one() == 10


async def test_the_wait_ends_at_the_busy_timeout(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    with closing(sqlite3.connect(database)) as setup:
        setup.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER)")
        setup.commit()
    holder = other_writer(tmp_path)
    connection = await inline_connector(str(database), busy_timeout=0.2)()
    try:
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await connection.execute("INSERT INTO counter VALUES (1, 1)")
        assert 0.2 <= time.monotonic() - started < 2
    finally:
        await connection.close()
        holder.close()


async def test_a_moved_snapshot_is_not_waited_for(tmp_path: Path) -> None:
    """SQLITE_BUSY_SNAPSHOT: waiting cannot help (the transaction read before another writer
    committed), so it is answered at once, as SQLite's own handler answers it."""
    database = tmp_path / "ledger.db"
    with closing(sqlite3.connect(database)) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER)")
        setup.execute("INSERT INTO counter VALUES (1, 0)")
        setup.commit()
    connection = await inline_connector(str(database), busy_timeout=5)()
    try:
        await connection.execute("BEGIN")
        await (await connection.execute("SELECT value FROM counter")).fetchall()
        with closing(sqlite3.connect(database)) as other:
            other.execute("UPDATE counter SET value = 1")
            other.commit()
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError) as refused:
            await connection.execute("UPDATE counter SET value = 2")
        assert refused.value.sqlite_errorcode == 517  # SQLITE_BUSY_SNAPSHOT
        assert time.monotonic() - started < 1
    finally:
        await connection.close()
