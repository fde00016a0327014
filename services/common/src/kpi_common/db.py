"""Database engines for SQLite (embedded default) and PostgreSQL (scale), one way for every service."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from kpi_common.bulk_writes import IGNORE, OnConflict, write_rows
from kpi_common.inline_sqlite import inline_connector

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, autocheckpoint: bool = True, **kwargs: Any) -> AsyncEngine:
    """An async engine; on SQLite, WAL, foreign keys, a busy timeout and explicit BEGIN.

    `autocheckpoint=False`: this engine's commits never checkpoint the WAL; for a service that runs
    a `kpi_common.checkpoints.WalCheckpointer` on the database, which does.

    SQLite transactions are deferred: a transaction that must read and then write starts with a
    write (`EventStore.lock`), so it never has to upgrade its lock halfway (SQLITE_BUSY_SNAPSHOT).
    SQLite is called in the event loop's thread (`kpi_common.inline_sqlite`, which says why), and
    waits for a lock without holding the loop.
    """
    if not is_sqlite(url):
        return create_async_engine(url, pool_pre_ping=True, **kwargs)
    database = make_url(url).database or ":memory:"
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, async_creator=inline_connector(database, busy_timeout=30.0), **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def upsert(
    session: AsyncSession, table: Table, rows: list[dict[str, Any]], key: list[str], *, least: Collection[str] = ()
) -> None:
    """Insert rows, replacing the other columns of rows whose key exists (SQLite and PostgreSQL); a
    column in `least` keeps the smaller of the stored and the new value instead. Every row has the
    first row's columns."""
    await _write_dicts(session, table, rows, OnConflict(tuple(key), tuple(least)))


async def insert_ignoring_duplicates(
    session: AsyncSession, table: Table, rows: dict[str, Any] | list[dict[str, Any]]
) -> None:
    """Insert a row or rows; a row whose key exists is left as it is (the insert is idempotent)."""
    await _write_dicts(session, table, [rows] if isinstance(rows, dict) else rows, IGNORE)


async def _write_dicts(
    session: AsyncSession, table: Table, rows: list[dict[str, Any]], on_conflict: OnConflict
) -> None:
    if not rows:
        return
    columns = tuple(rows[0])
    await write_rows(session, table, columns, [tuple(row[name] for name in columns) for row in rows], on_conflict)
