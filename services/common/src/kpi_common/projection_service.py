"""What every projection service is made of: a database, tracked projections, stream followers.

A service follows the event log (its `tracking`, `follower`) and possibly further streams
(`also`: reporting follows the score stream too), each with its own stored position.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kpi_common.checkpoints import WalCheckpointer, background_checkpoints
from kpi_common.consumer import StreamFollower
from kpi_common.db import make_engine, session_factory
from kpi_common.streams import EVENTS, Stream
from kpi_common.tracking import Apply, FinishBatch, TrackedProjection

STALLED_AFTER_SECONDS = 60.0  # events wait and none could be applied for this long: not ready


@dataclass(frozen=True)
class Following:
    """One stream a service applies, from its own position."""

    stream: Stream
    tracking: TrackedProjection
    follower: StreamFollower


@dataclass
class ProjectionService:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    tracking: TrackedProjection
    follower: StreamFollower
    also: list[Following] = field(default_factory=list)
    # held by each batch of the service's projections while it writes: anything else of the process
    # that writes to the same database takes its turn with them (see `TrackedProjection`)
    turns: asyncio.Lock = field(default_factory=asyncio.Lock)
    checkpoints: WalCheckpointer | None = None  # on SQLite: the log checkpointed outside the batches' commits

    @property
    def followings(self) -> list[Following]:
        return [Following(self.follower.stream, self.tracking, self.follower), *self.also]

    def start(self) -> None:
        if self.checkpoints is not None:
            self.checkpoints.start()
        for following in self.followings:
            following.follower.start()

    async def check_database(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def check_nats(self) -> None:
        """A projection can do its job only while it follows its streams."""
        for following in self.followings:
            if not following.follower.running:
                raise RuntimeError(f"the consumer of {following.stream.name} is not running")
            if not following.follower.connected:
                raise ConnectionError("not connected to NATS")
            stalled = following.follower.stats.stalled_for()
            if stalled > STALLED_AFTER_SECONDS:
                raise RuntimeError(f"the consumer of {following.stream.name} has not moved for {stalled:.0f} s")

    async def close(self) -> None:
        await asyncio.gather(*(following.follower.close() for following in self.followings))
        if self.checkpoints is not None:
            await self.checkpoints.close(self.engine)
        else:
            await self.engine.dispose()


@dataclass(frozen=True)
class FurtherStream:
    consumer: str
    stream: Stream
    apply: Apply
    finish_batch: FinishBatch | None = None


def build_projection_service(
    *,
    database_url: str,
    nats_url: str,
    consumer: str,
    replicas: int,
    positions: Table,
    dead_letters: Table,
    apply: Apply,
    finish_batch: FinishBatch | None = None,
    committed: Callable[[], None] | None = None,
    also: Sequence[FurtherStream] = (),
) -> ProjectionService:
    checkpoints = background_checkpoints(database_url)
    engine = make_engine(database_url, autocheckpoint=checkpoints is None)
    sessions = session_factory(engine)
    turns = asyncio.Lock()
    tracking = TrackedProjection(sessions, consumer, positions, dead_letters, apply, finish_batch, committed, turns)
    further = []
    for extra in also:
        extra_tracking = TrackedProjection(
            sessions, extra.consumer, positions, dead_letters, extra.apply, extra.finish_batch, turns=turns
        )
        follower = StreamFollower(nats_url, extra.consumer, extra_tracking, replicas, extra.stream)
        further.append(Following(extra.stream, extra_tracking, follower))
    return ProjectionService(
        engine,
        sessions,
        tracking,
        StreamFollower(nats_url, consumer, tracking, replicas, EVENTS),
        further,
        turns,
        checkpoints,
    )
