"""The fresh database a rebuild replays into, and the swap that puts it in place of the service's own
(issue 12): on SQLite and PostgreSQL, a swap moves exactly the fresh content in, and refuses, changing
nothing, while another process still has the service's database open."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from kpi_common.db import is_sqlite, make_engine
from kpi_common.fresh_database import DatabaseInUse, create_empty, drop, fresh_url, swap


async def write(url: str, value: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE IF NOT EXISTS kept (value TEXT)"))
            await connection.execute(text("INSERT INTO kept VALUES (:value)"), {"value": value})
    finally:
        await engine.dispose()


async def values(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return [row[0] for row in await connection.execute(text("SELECT value FROM kept ORDER BY value"))]
    finally:
        await engine.dispose()


@contextmanager
def held_open(url: str) -> Iterator[None]:
    """Another process with a connection to the database (as a running service has)."""
    if is_sqlite(url):
        path = make_url(url).database
        code = f"import sqlite3, time; c = sqlite3.connect({path!r}); "
        code += "c.execute('SELECT count(*) FROM sqlite_master').fetchall(); print('open', flush=True); time.sleep(60)"
    else:
        plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        code = "import asyncio, asyncpg, time\nasync def main():\n"
        code += f"    c = await asyncpg.connect({plain!r})\n"
        code += "    print('open', flush=True)\n    await asyncio.sleep(60)\n"
        code += "asyncio.run(main())"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        yield
    finally:
        holder.kill()
        holder.wait()
        time.sleep(0.2)  # the server notices the closed connection


async def test_the_swap_puts_the_fresh_database_in_place_of_the_old(database_url: str) -> None:
    await write(database_url, "old")
    fresh = fresh_url(database_url)
    assert fresh != database_url
    await create_empty(fresh)
    await write(fresh, "rebuilt")
    await swap(database_url, fresh)
    assert await values(database_url) == ["rebuilt"]
    await create_empty(fresh)  # the name is free again: nothing of the old database is left under it
    await drop(fresh)


async def test_the_swap_refuses_while_another_process_has_the_database_open(database_url: str) -> None:
    await write(database_url, "old")
    fresh = fresh_url(database_url)
    await create_empty(fresh)
    await write(fresh, "rebuilt")
    with held_open(database_url), pytest.raises(DatabaseInUse):
        await swap(database_url, fresh)
    assert await values(database_url) == ["old"]
    assert await values(fresh) == ["rebuilt"]  # the rebuild drops it; the swap leaves both as they were
    await drop(fresh)
