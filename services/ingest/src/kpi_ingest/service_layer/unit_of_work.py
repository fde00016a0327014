"""The unit of work owns the transaction: it rolls back unless `commit` is called."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_ingest.adapters.event_store import EventStore
from kpi_ingest.adapters.set_store import SetStore
from kpi_ingest.adapters.workflow_store import WorkflowStore


class UnitOfWork:
    """One per request. `writing()` marks a transaction that appends: on SQLite such transactions
    queue on a process-wide lock instead of spinning in SQLite's busy handler."""

    events: EventStore
    workflow: WorkflowStore
    sets: SetStore

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        write_lock: asyncio.Lock | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._write_lock = write_lock
        self._on_commit = on_commit  # the outbox relay's wake-up: what was committed is published at once
        self._holds_lock = False
        self._for_writing = False

    def writing(self) -> UnitOfWork:
        self._for_writing = True
        return self

    async def __aenter__(self) -> UnitOfWork:
        if self._for_writing and self._write_lock is not None:
            await self._write_lock.acquire()
            self._holds_lock = True
        self._session = self._sessions()
        self.events = EventStore(self._session)
        self.workflow = WorkflowStore(self._session)
        self.sets = SetStore(self._session)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._session.rollback()
            await self._session.close()
        finally:
            self._for_writing = False
            if self._holds_lock and self._write_lock is not None:
                self._holds_lock = False
                self._write_lock.release()

    @property
    def session(self) -> AsyncSession:
        return self._session

    async def commit(self) -> None:
        await self._session.commit()
        if self._on_commit is not None:
            self._on_commit()
