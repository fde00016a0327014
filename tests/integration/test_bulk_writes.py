"""Rows written straight to the driver: the same rows, conflicts and values as SQLAlchemy's own path."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import BigInteger, Column, DateTime, MetaData, String, Table, event, select
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common import bulk_writes
from kpi_common.bulk_writes import IGNORE, OnConflict, write_rows
from kpi_common.db import insert_ignoring_duplicates, make_engine, session_factory, upsert

metadata = MetaData()
firsts = Table(
    "firsts",
    metadata,
    Column("unit", String(20), primary_key=True),
    Column("sequence", BigInteger, nullable=False),
    Column("seen_at", String(32), nullable=False),
    Column("note", String(20), nullable=True),
)
stamped = Table(  # a column SQLAlchemy converts on the way in (a datetime, on SQLite)
    "stamped",
    metadata,
    Column("unit", String(20), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
)


async def written(database_url: str, *steps: list[tuple[str, int, str, str | None]]) -> list[tuple[object, ...]]:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        sessions = session_factory(engine)
        for rows in steps:
            async with sessions() as session:
                columns = ("unit", "sequence", "seen_at", "note")
                await write_rows(session, firsts, columns, rows, OnConflict(("unit",), ("sequence", "seen_at")))
                await session.commit()
        async with sessions() as session:
            return [tuple(row) for row in await session.execute(select(firsts).order_by(firsts.c.unit))]
    finally:
        await engine.dispose()


async def test_an_upsert_keeps_the_least_of_the_columns_it_is_told_to_and_replaces_the_rest(database_url: str) -> None:
    rows = await written(
        database_url,
        [("u1", 5, "t5", "a"), ("u2", 7, "t7", None)],
        [("u1", 9, "t3", "b"), ("u3", 1, "t1", "c")],  # u1: a later sequence, an earlier time
        [("u2", 2, "t9", "d")],
    )
    assert rows == [("u1", 5, "t3", "b"), ("u2", 2, "t7", "d"), ("u3", 1, "t1", "c")]


async def test_rows_past_the_parameter_limit_split_into_statements_and_conflicts_hold_in_each(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk_writes, "_sqlite_parameter_limit", lambda: 4 * 3)  # three rows of four columns
    statements: list[str] = []
    engine = make_engine(database_url)
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        async with session_factory(engine)() as session:
            rows = [(f"u{index % 4}", index, f"t{index}", None) for index in range(10)]
            await write_rows(session, firsts, ("unit", "sequence", "seen_at", "note"), rows, IGNORE)
            await session.commit()
            found = [tuple(row) for row in await session.execute(select(firsts).order_by(firsts.c.unit))]
    finally:
        await engine.dispose()
    assert found == [("u0", 0, "t0", None), ("u1", 1, "t1", None), ("u2", 2, "t2", None), ("u3", 3, "t3", None)]
    inserts = [sql for sql in statements if sql.startswith("INSERT INTO firsts")]
    if database_url.startswith("sqlite"):
        assert [sql.count("),(") + 1 for sql in inserts] == [3, 3, 3, 1]


async def test_a_column_sqlalchemy_converts_takes_its_path_and_reads_back_the_same(database_url: str) -> None:
    moment = datetime(2026, 12, 3, 17, 45, tzinfo=UTC)
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        async with session_factory(engine)() as session:
            await insert_ignoring_duplicates(session, stamped, [{"unit": "u1", "at": moment}])
            await insert_ignoring_duplicates(session, stamped, {"unit": "u1", "at": datetime(2020, 1, 1, tzinfo=UTC)})
            await session.commit()
            read = (await session.execute(select(stamped.c.at))).scalar_one()
    finally:
        await engine.dispose()
    assert read.replace(tzinfo=read.tzinfo or UTC) == moment


async def test_upsert_and_insert_ignoring_duplicates_write_dicts_through_the_same_path(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        session: AsyncSession
        async with session_factory(engine)() as session:
            row = {"unit": "u1", "sequence": 4, "seen_at": "t4", "note": "a"}
            await insert_ignoring_duplicates(session, firsts, row)
            await insert_ignoring_duplicates(session, firsts, {**row, "note": "ignored"})
            await upsert(session, firsts, [{**row, "sequence": 8, "note": "b"}], key=["unit"], least=["sequence"])
            await session.commit()
            found = [tuple(row) for row in await session.execute(select(firsts))]
    finally:
        await engine.dispose()
    assert found == [("u1", 4, "t4", "b")]


async def test_columns_given_in_another_order_than_the_tables_land_in_their_own(database_url: str) -> None:
    """The statement's placeholders follow the table's column order (numbered, on PostgreSQL)."""
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        async with session_factory(engine)() as session:
            columns = ("note", "seen_at", "unit", "sequence")
            await write_rows(session, firsts, columns, [("n1", "t1", "u1", 1), ("n2", "t2", "u2", 2)])
            await write_rows(session, firsts, columns, [("n3", "t0", "u1", 9)], OnConflict(("unit",), ("sequence",)))
            await session.commit()
            found = [tuple(row) for row in await session.execute(select(firsts).order_by(firsts.c.unit))]
    finally:
        await engine.dispose()
    assert found == [("u1", 1, "t0", "n3"), ("u2", 2, "t2", "n2")]
