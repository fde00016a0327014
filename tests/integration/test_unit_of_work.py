"""Ingest's unit of work makes its session only when a store is used: a request whose look-ups are
answered from memory (catalogues, the unit registry) opens no session for them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_ingest.service_layer.unit_of_work import UnitOfWork


class CountingSessions:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions, self.made = sessions, 0

    def __call__(self) -> AsyncSession:
        self.made += 1
        return self.sessions()


async def test_a_block_that_reads_nothing_makes_no_session(ingest_sessions: Any) -> None:
    sessions, _ = ingest_sessions
    counting = CountingSessions(sessions)
    uow = UnitOfWork(counting)  # type: ignore[arg-type]
    async with uow:
        await uow.commit()
    assert counting.made == 0
    async with uow:
        assert await uow.events.head() > 0
        assert await uow.workflow.is_closed("mini-dti", "1.0", 2024) is False
    async with uow:
        await uow.events.head()
    assert counting.made == 2  # one a block, shared by its stores
