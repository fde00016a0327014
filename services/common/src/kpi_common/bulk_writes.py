"""Many rows written by statements built once per shape, given the driver's parameters directly.

SQLAlchemy's executemany builds and checks every row's parameters (about 14 µs a row, measured on
a projection's batch of 20,000 score lines: half of the write). Where no column needs SQLAlchemy
to convert its value on the way in (text and whole numbers: every table a batch writes), the rows
go to the driver as tuples. On SQLite many rows go in one statement: executemany runs a statement
per row, and a statement on a table with a trigger (the event log) opens a statement journal of its
own (2.3x slower, measured). Elsewhere one executemany (asyncpg pipelines it). Any other table
takes SQLAlchemy's own path, so a value is never written unconverted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Any

from sqlalchemy import Table, case
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler

ROWS_PER_STATEMENT = 2000  # on SQLite, at most this many rows a statement (fewer if the parameters run out)


@dataclass(frozen=True)
class OnConflict:
    """What a row whose key exists does: nothing (`key` empty), or replace the other columns, each
    in `least` keeping the smaller of the stored and the new value."""

    key: tuple[str, ...] = ()
    least: tuple[str, ...] = ()


IGNORE = OnConflict()


async def write_rows(
    session: AsyncSession,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[tuple[Any, ...]],
    on_conflict: OnConflict | None = None,
) -> None:
    """Insert `rows` (values in `columns` order) into `table`; a key that exists fails the insert
    unless `on_conflict` says what to do."""
    if not rows:
        return
    connection = await session.connection()
    dialect = connection.dialect
    if not _passes_values_as_they_are(dialect, table, columns):
        statement = _statement(dialect, table, columns, on_conflict)
        await session.execute(statement, [dict(zip(columns, row, strict=True)) for row in rows])
        return
    if dialect.name == "sqlite":
        per_statement = min(ROWS_PER_STATEMENT, _sqlite_parameter_limit() // len(columns))
        for start in range(0, len(rows), per_statement):
            part = rows[start : start + per_statement]
            sql = _sqlite_statement(table, columns, len(part), on_conflict)
            await connection.exec_driver_sql(sql, tuple(chain.from_iterable(part)))
        return
    compiled = _compiled(dialect, table, columns, on_conflict)
    if compiled.positiontup is None:  # a driver with named parameters
        await connection.exec_driver_sql(compiled.string, [dict(zip(columns, row, strict=True)) for row in rows])
        return
    order = _positions(columns, tuple(compiled.positiontup))
    in_order = list(rows) if order is None else [tuple(row[index] for index in order) for row in rows]
    await connection.exec_driver_sql(compiled.string, in_order)


@lru_cache(maxsize=256)
def _positions(columns: tuple[str, ...], placeholders: tuple[str, ...]) -> tuple[int, ...] | None:
    """Where each placeholder's value is in a row of `columns` (None: in the same order); the
    statement numbers its placeholders in the table's column order."""
    if placeholders == columns:
        return None
    return tuple(columns.index(name) for name in placeholders)


def _statement(dialect: Dialect, table: Table, columns: tuple[str, ...], on_conflict: OnConflict | None) -> Any:
    insert_for = sqlite_insert if dialect.name == "sqlite" else postgresql_insert
    statement = insert_for(table)
    if on_conflict is None:
        return statement
    updates: dict[str, Any] = {}
    for name in columns:
        if name not in on_conflict.key:
            new, stored = statement.excluded[name], table.c[name]
            updates[name] = case((new < stored, new), else_=stored) if name in on_conflict.least else new
    if not on_conflict.key or not updates:
        return statement.on_conflict_do_nothing()
    return statement.on_conflict_do_update(index_elements=list(on_conflict.key), set_=updates)


@lru_cache(maxsize=256)
def _passes_values_as_they_are(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> bool:
    return all(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) is None for name in columns)


@lru_cache(maxsize=256)
def _compiled(dialect: Dialect, table: Table, columns: tuple[str, ...], on_conflict: OnConflict | None) -> SQLCompiler:
    compiled = _statement(dialect, table, columns, on_conflict).compile(dialect=dialect, column_keys=list(columns))
    assert isinstance(compiled, SQLCompiler)
    return compiled


@lru_cache(maxsize=1024)
def _sqlite_statement(table: Table, columns: tuple[str, ...], rows: int, on_conflict: OnConflict | None) -> str:
    """An INSERT of `rows` rows in one statement, in SQLite's placeholders, with its conflict clause
    (the same words SQLAlchemy writes for SQLite: `_compiled` gives the single-row form)."""
    values = f"({','.join('?' * len(columns))})"
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {','.join([values] * rows)}"
    if on_conflict is None:
        return sql
    updated = [name for name in columns if name not in on_conflict.key]
    if not on_conflict.key or not updated:
        return f"{sql} ON CONFLICT DO NOTHING"
    sets = ", ".join(
        f"{name} = CASE WHEN excluded.{name} < {table.name}.{name} THEN excluded.{name} ELSE {table.name}.{name} END"
        if name in on_conflict.least
        else f"{name} = excluded.{name}"
        for name in updated
    )
    return f"{sql} ON CONFLICT ({', '.join(on_conflict.key)}) DO UPDATE SET {sets}"


@lru_cache(maxsize=1)
def _sqlite_parameter_limit() -> int:
    """How many parameters one statement may bind (999 before SQLite 3.32, 32766 since)."""
    with closing(sqlite3.connect(":memory:")) as probe:
        return probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
