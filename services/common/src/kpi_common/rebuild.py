"""Rebuild a projection from its streams: replay every event into a fresh database, swap it in.

Run it with the service stopped (the swap refuses while the database is open). A table marked
`info={"kept_on_rebuild": True}` is the service's own record (scoring's score log: what it already
published must keep its sequence) and is copied over as it is. The replay goes through the same
loop, tracking and handlers as live operation (the loop reads each stream from the projection's
position, 0 in the fresh database), in memory-sized batches. Nothing is created unless NATS and
the streams answer first, and the service's database is untouched until the replay has reached
the head of every stream.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass

from nats.js.errors import NotFoundError
from sqlalchemy import MetaData, Table, insert, select
from sqlalchemy.engine import make_url

from kpi_common.collector import fewer_collections
from kpi_common.db import is_sqlite, make_engine
from kpi_common.fresh_database import create_empty, drop, fresh_url, swap
from kpi_common.messaging import connect
from kpi_common.progress import ProgressLine
from kpi_common.projection_service import ProjectionService
from kpi_common.streams import EVENTS, Stream, head_sequence

COPY_CHUNK = 1_000  # rows of a kept table copied per statement
PROGRESS_SECONDS = 0.5  # the progress line is written at least this often


class StreamUnavailable(RuntimeError):
    pass


async def last_event_sequence(nats_url: str, stream: Stream = EVENTS) -> int:
    """The sequence of the last event on the stream (0 when it is empty); raises StreamUnavailable."""
    try:
        client = await asyncio.wait_for(connect(nats_url, "kpi-rebuild-probe", keep_trying=False), timeout=10)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise StreamUnavailable(f"NATS at {nats_url} does not answer ({reason})") from None
    try:
        try:
            return await head_sequence(client.jetstream(), stream)
        except NotFoundError:
            raise StreamUnavailable(f"the stream {stream.name} does not exist on {nats_url}") from None
    finally:
        await client.close()


@dataclass(frozen=True)
class Rebuilt:
    position: int  # the last event sequence applied
    prepare_seconds: float  # the fresh database created, migrated, the kept tables copied
    replay_seconds: float  # from the first event read to the head of every stream


async def rebuild(
    build: Callable[[str], ProjectionService],
    metadata: MetaData,
    nats_url: str,
    database_url: str,
    migrate: Callable[[str], None],
    timeout: float = 3600.0,
) -> Rebuilt:
    """Replay the streams into a fresh database, then swap it in. Whatever fails before the swap
    leaves the service's database as it was (the fresh one is dropped)."""
    fresh = fresh_url(database_url)
    service = build(fresh)
    targets = [await last_event_sequence(nats_url, following.stream) for following in service.followings]  # first
    started = time.monotonic()
    await create_empty(fresh)
    try:
        migrate(fresh)
        await _copy_kept(metadata, database_url, fresh, service)
        prepared = time.monotonic()
        with fewer_collections():
            position = await _replay(service, targets, timeout)
        replayed = time.monotonic()
        await swap(database_url, fresh)
    except BaseException:
        await drop(fresh)
        raise
    return Rebuilt(position, prepared - started, replayed - prepared)


async def _copy_kept(metadata: MetaData, database_url: str, fresh: str, service: ProjectionService) -> None:
    """The tables a rebuild keeps (a service's own record, such as scoring's score log), copied over."""
    kept = [table for table in metadata.sorted_tables if table.info.get("kept_on_rebuild")]
    if is_sqlite(database_url) and is_sqlite(fresh):
        files = [make_url(url).database or "" for url in (database_url, fresh)]
        await asyncio.to_thread(_copy_between_sqlite_files, kept, *files)
        return
    source = make_engine(database_url)
    try:
        async with source.connect() as reading, service.sessions() as writing:
            for table in kept:
                rows = await reading.stream(select(table))
                async for chunk in rows.mappings().partitions(COPY_CHUNK):
                    await writing.execute(insert(table), [dict(row) for row in chunk])
            await writing.commit()
    finally:
        await source.dispose()


def _copy_between_sqlite_files(tables: list[Table], source: str, target: str) -> None:
    """One `INSERT ... SELECT` per table, the source file attached: SQLite copies the rows itself
    (a score log of 52,597 lines: 2 s through SQLAlchemy, row by row; a decade's would take
    minutes), in one transaction."""
    with closing(sqlite3.connect(target, isolation_level=None)) as fresh:
        fresh.execute("ATTACH DATABASE ? AS kept_source", (source,))
        fresh.execute("BEGIN")
        for table in tables:
            columns = ", ".join(f'"{column.name}"' for column in table.columns)
            fresh.execute(
                f'INSERT INTO main."{table.name}" ({columns}) SELECT {columns} FROM kept_source."{table.name}"'
            )
        fresh.execute("COMMIT")
        fresh.execute("DETACH DATABASE kept_source")


async def _replay(service: ProjectionService, targets: list[int], timeout: float) -> int:
    """Follow every stream until each projection's position reaches its target. The loop wakes
    when a follower commits a batch (or every `PROGRESS_SECONDS`, for the progress line), so the
    end is noticed as it happens; the positions are confirmed from the database."""
    followings = service.followings
    for following in followings:
        following.follower.batch = following.stream.replay_batch
    service.start()
    started, progress = time.monotonic(), ProgressLine()
    try:
        while True:
            for following in followings:  # cleared before reading: a batch committed from here on wakes the wait
                following.follower.stats.moved.clear()
            known = [following.follower.stats.position for following in followings]
            if all(reached >= goal for reached, goal in zip(known, targets, strict=True)):
                async with service.sessions() as session:
                    positions = [await following.tracking.position(session) for following in followings]
            else:
                positions = known
            position, target = positions[0], targets[0]
            elapsed = time.monotonic() - started
            progress.show(position, target)
            if all(reached >= goal for reached, goal in zip(positions, targets, strict=True)):
                progress.end()
                return position
            if elapsed >= timeout:
                raise TimeoutError(f"the rebuild did not catch up within {timeout} s (at {position} of {target})")
            await _moved(service, min(PROGRESS_SECONDS, max(timeout - elapsed, 0.0)))
    finally:
        await service.close()


async def _moved(service: ProjectionService, seconds: float) -> None:
    """Until a follower commits a batch, at most `seconds`."""
    waits = [asyncio.ensure_future(following.follower.stats.moved.wait()) for following in service.followings]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
