"""What every projection service is made of: a database, a tracked projection, a stream follower."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kpi_common.consumer import StreamFollower
from kpi_common.db import make_engine, session_factory
from kpi_common.tracking import Apply, TrackedProjection


@dataclass
class ProjectionService:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    tracking: TrackedProjection
    follower: StreamFollower

    def start(self) -> None:
        self.follower.start()

    async def check_database(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def check_nats(self) -> None:
        """A projection can do its job only while it follows the stream."""
        if not self.follower.running:
            raise RuntimeError("the consumer is not running")
        if not self.follower.connected:
            raise ConnectionError("not connected to NATS")

    async def close(self) -> None:
        await self.follower.close()
        await self.engine.dispose()


def build_projection_service(
    *,
    database_url: str,
    nats_url: str,
    consumer: str,
    replicas: int,
    positions: Table,
    dead_letters: Table,
    apply: Apply,
) -> ProjectionService:
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    tracking = TrackedProjection(sessions, consumer, positions, dead_letters, apply)
    return ProjectionService(engine, sessions, tracking, StreamFollower(nats_url, consumer, tracking, replicas))
