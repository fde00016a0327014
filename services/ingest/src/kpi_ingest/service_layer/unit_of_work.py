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
    queue on a process-wide lock instead of spinning in SQLite's busy handler. The session is made
    when a store is first used: a block that finds what it needs in a cache costs no session."""

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
        self._session: AsyncSession | None = None
        self._stores: tuple[EventStore, WorkflowStore, SetStore] | None = None

    def writing(self) -> UnitOfWork:
        self._for_writing = True
        return self

    async def __aenter__(self) -> UnitOfWork:
        if self._for_writing and self._write_lock is not None:
            await self._write_lock.acquire()
            self._holds_lock = True
        self._session, self._stores = None, None
        return self

    def _stores_of_session(self) -> tuple[EventStore, WorkflowStore, SetStore]:
        if self._stores is None:
            session = self.session
            self._stores = (EventStore(session), WorkflowStore(session), SetStore(session))
        return self._stores

    @property
    def events(self) -> EventStore:
        return self._stores_of_session()[0]

    @property
    def workflow(self) -> WorkflowStore:
        return self._stores_of_session()[1]

    @property
    def sets(self) -> SetStore:
        return self._stores_of_session()[2]

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._session is not None:
                await self._session.rollback()
                await self._session.close()
        finally:
            self._session, self._stores = None, None
            self._for_writing = False
            if self._holds_lock and self._write_lock is not None:
                self._holds_lock = False
                self._write_lock.release()

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self._sessions()
        return self._session

    async def commit(self) -> None:
        if self._session is None:
            return  # nothing was read or written
        await self._session.commit()
        if self._on_commit is not None:
            self._on_commit()
