"""A fresh database beside a service's own, and the swap that puts it in its place.

A rebuild replays into the fresh one while the service's database stays as it is; only a replay
that reached the stream's head is swapped in. SQLite: the file `<name>.rebuilding` beside the
database, moved over it. PostgreSQL: the database `<name>_rebuilding` on the same server, renamed
(the old one is dropped). Either swap refuses while anything still has the database open: stop
the service first.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from kpi_common.db import is_sqlite

SUFFIX = "rebuilding"


class DatabaseInUse(RuntimeError):
    pass


def fresh_url(database_url: str) -> str:
    url = make_url(database_url)
    name = url.database or ""
    if is_sqlite(database_url):
        return url.set(database=f"{name}.{SUFFIX}").render_as_string(hide_password=False)
    return url.set(database=f"{name}_{SUFFIX}").render_as_string(hide_password=False)


def _sqlite_files(path: str) -> list[Path]:
    return [Path(path + suffix) for suffix in ("", "-wal", "-shm", "-journal")]


def _server(url: URL) -> str:
    return url.set(database="postgres").render_as_string(hide_password=False)


async def _on_server(database_url: str, *statements: str) -> None:
    """Statements that run outside any transaction (CREATE, DROP, ALTER DATABASE)."""
    engine = create_async_engine(_server(make_url(database_url)), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def create_empty(database_url: str) -> None:
    """The fresh database, empty (what a failed rebuild left is dropped first)."""
    await drop(database_url)
    if not is_sqlite(database_url):
        await _on_server(database_url, f'CREATE DATABASE "{make_url(database_url).database}"')


async def drop(database_url: str) -> None:
    if is_sqlite(database_url):
        for file in _sqlite_files(make_url(database_url).database or ""):
            file.unlink(missing_ok=True)
        return
    await _on_server(database_url, f'DROP DATABASE IF EXISTS "{make_url(database_url).database}"')


SQLITE_DMS_BYTE = 128  # of the -shm file: every connection to a WAL database holds a shared lock on it


def _sqlite_unused(path: str) -> None:
    """Refuse while another process has the database open, then fold the write-ahead log into the file.

    SQLite's unix VFS keeps a shared POSIX lock on one byte of the `-shm` file for as long as a
    connection is open (the "dead man switch" it uses to know it is alone); an exclusive lock on it
    is granted only when no other process holds the database."""
    if not Path(path).exists():
        return
    shm = Path(path + "-shm")
    if shm.exists():
        with shm.open("r+b") as handle:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, SQLITE_DMS_BYTE)
            except OSError:
                raise DatabaseInUse(f"{path} is open in another process: stop the service before a rebuild") from None
            fcntl.lockf(handle, fcntl.LOCK_UN, 1, SQLITE_DMS_BYTE)
    connection = sqlite3.connect(path)
    try:
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        connection.close()
    if busy:
        raise DatabaseInUse(f"{path} is in use: stop the service before a rebuild")


async def swap(database_url: str, fresh: str) -> None:
    """Put the fresh database in the place of the service's own; the old one is gone after."""
    if is_sqlite(database_url):
        path, fresh_path = make_url(database_url).database or "", make_url(fresh).database or ""
        _sqlite_unused(path)
        _sqlite_unused(fresh_path)
        for stale in _sqlite_files(path)[1:]:  # a log left beside the old file must not meet the new one
            stale.unlink(missing_ok=True)
        os.replace(fresh_path, path)
        return
    name, fresh_name = make_url(database_url).database, make_url(fresh).database
    replaced = f"{name}_replaced"
    try:
        await _on_server(
            database_url,
            f'DROP DATABASE IF EXISTS "{replaced}"',
            f'ALTER DATABASE "{name}" RENAME TO "{replaced}"',
        )
    except Exception as error:  # the service (or anything else) is still connected
        raise DatabaseInUse(f"database {name} is in use: stop the service before a rebuild ({error})") from None
    try:
        await _on_server(database_url, f'ALTER DATABASE "{fresh_name}" RENAME TO "{name}"')
    except Exception:
        await _on_server(database_url, f'ALTER DATABASE "{replaced}" RENAME TO "{name}"')  # as it was
        raise
    await _on_server(database_url, f'DROP DATABASE "{replaced}"')
