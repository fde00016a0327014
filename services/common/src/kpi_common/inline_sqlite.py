"""aiosqlite's connection with every call made in the event loop's own thread.

aiosqlite runs each call on a worker thread and wakes the loop for its answer. On SQLite a small
statement takes microseconds, but the hand-off to the thread and back costs about 0.2 ms of CPU,
and SQLAlchemy makes four of them per statement (cursor, execute, fetch, close): one statement
cost about 1 ms of CPU, 80 times what sqlite3 takes for it (measured; see the README's benchmark
section). Here a call runs where it is awaited, and is done when the await returns.

Waiting for a lock is the one thing the loop's thread must never do: SQLite's own busy handler
would sleep in it, and the coroutine holding the lock could never run to release it. So these
connections have no busy timeout in SQLite (it answers SQLITE_BUSY at once), and a statement
refused that way is tried again after an asynchronous sleep, with SQLite's own back-off, until
`busy_timeout` has passed. SQLITE_BUSY_SNAPSHOT (a transaction read a snapshot that a writer has
since moved past) is not retried, as SQLite's handler does not retry it: only a rollback helps.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Generator
from typing import Any

import aiosqlite

SQLITE_BUSY = 5  # the primary code; SQLITE_BUSY_SNAPSHOT (517) and the others are extended codes
BACK_OFF = (0.001, 0.002, 0.005, 0.010, 0.015, 0.020, 0.025, 0.025, 0.025, 0.050, 0.050, 0.100)  # sqlite3.c's


class _InlineQueue:
    """Stands in for aiosqlite's queue to its worker thread (SQLAlchemy's dialect also puts a call on
    it directly): the call is made at once and its future settled before the caller awaits it."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as error:  # handed to the awaiting caller, as aiosqlite does
            if future is not None and not future.done():
                future.set_exception(error)
            return
        if future is not None and not future.done():
            future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose thread is never started."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], busy_timeout: float) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _InlineQueue()  # type: ignore[assignment]
        self._busy_timeout = busy_timeout

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        deadline: float | None = None
        attempt = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as error:
                if getattr(error, "sqlite_errorcode", None) != SQLITE_BUSY:
                    raise
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self._busy_timeout
                if now >= deadline:
                    raise
                await asyncio.sleep(min(BACK_OFF[min(attempt, len(BACK_OFF) - 1)], deadline - now))
                attempt += 1

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = await self._execute_connect()
        return self

    async def _execute_connect(self) -> sqlite3.Connection:
        # opening can meet a lock too (a WAL being recovered by another process)
        deadline = time.monotonic() + self._busy_timeout
        attempt = 0
        while True:
            try:
                return self._connector()
            except sqlite3.OperationalError as error:
                if getattr(error, "sqlite_errorcode", None) != SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(BACK_OFF[min(attempt, len(BACK_OFF) - 1)])
                attempt += 1

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._connect().__await__()

    def stop(self) -> asyncio.Future[Any] | None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        return None

    async def close(self) -> None:
        self.stop()


def inline_connector(database: str, *, uri: bool = False, busy_timeout: float = 30.0) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine`: SQLAlchemy's aiosqlite dialect over inline connections."""

    def connect() -> sqlite3.Connection:
        # timeout=0: SQLite answers SQLITE_BUSY at once, and `_execute` waits without holding the loop;
        # isolation_level=None: transactions are begun explicitly (`kpi_common.db.make_engine`)
        return sqlite3.connect(database, timeout=0, isolation_level=None, uri=uri, check_same_thread=False)

    async def create() -> InlineConnection:
        return await InlineConnection(connect, busy_timeout)

    return create
