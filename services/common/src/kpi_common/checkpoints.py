"""SQLite's WAL checkpoints in a thread of their own instead of inside a commit.

By default SQLite checkpoints in the commit that takes the write-ahead log past 1,000 pages: that
commit copies the log into the database file and syncs it before it returns (about 90 ms after a
10,000-row measurement set, on every few hundred single POSTs). A service that runs a
`WalCheckpointer` turns that off on its own connections (`make_engine(..., autocheckpoint=False)`)
and checkpoints from here when the log has grown past the same size, while requests go on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import struct
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from kpi_common.db import is_sqlite

log = logging.getLogger(__name__)

AUTOCHECKPOINT_FRAMES = 1000  # SQLite's own threshold
# the WAL index's header, in the -shm file (https://www.sqlite.org/walformat.html): the last valid
# frame of the log (mxFrame, byte 16) and how many of its frames are in the database (nBackfill, byte 96)
WAL_INDEX_HEADER = struct.Struct("=16xI76xI")


@dataclass
class WalCheckpointer:
    """Checkpoints `database`'s write-ahead log whenever it holds `threshold_frames` frames not yet
    copied into the database. Reads the WAL index's header to know (a file read, no lock taken).

    The index file stays open until `close`: closing any descriptor of a file drops every POSIX lock
    the process holds on it, SQLite's own included (the lock that tells another process, such as a
    rebuild, that the database is in use), so it is closed only once this process's connections are."""

    database: Path
    threshold_frames: int = AUTOCHECKPOINT_FRAMES
    interval_seconds: float = 0.05
    checkpoints: int = 0
    _connection: sqlite3.Connection | None = field(default=None, repr=False)
    _index: tuple[int, int] | None = field(default=None, repr=False)  # (descriptor, inode) of the -shm file
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.create_task(self.run(), name=f"wal-checkpoints {self.database.name}")

    async def close(self, engine: AsyncEngine | None = None) -> None:
        """Stops checkpointing, disposes of `engine` (this process's connections to the database), then
        lets go of the index file. What the log still holds is checkpointed by SQLite when the last
        connection closes."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._close_connection()
        if engine is not None:
            await engine.dispose()
        if self._index is not None:
            os.close(self._index[0])
            self._index = None

    def pending_frames(self) -> int:
        path = self.database.with_name(self.database.name + "-shm")
        try:
            inode = os.stat(path).st_ino
            if self._index is None or self._index[1] != inode:
                if self._index is not None:
                    # a file SQLite has deleted and made anew: no lock of this process is on the old one
                    os.close(self._index[0])
                    self._index = None
                descriptor = os.open(path, os.O_RDONLY)
                self._index = (descriptor, os.fstat(descriptor).st_ino)
        except FileNotFoundError:
            return 0
        header = os.pread(self._index[0], WAL_INDEX_HEADER.size, 0)
        if len(header) < WAL_INDEX_HEADER.size:
            return 0
        last_frame, backfilled = WAL_INDEX_HEADER.unpack(header)
        return max(0, int(last_frame) - int(backfilled))

    async def run(self) -> None:
        """Until cancelled."""
        try:
            while True:
                await asyncio.sleep(self.interval_seconds)
                if self.pending_frames() < self.threshold_frames:
                    continue
                try:
                    await self._checkpoint_in_thread()
                except sqlite3.Error as failed:  # busy or locked: the next round tries again
                    log.warning("WAL checkpoint of %s failed: %s", self.database.name, failed)
        finally:
            self._close_connection()

    async def _checkpoint_in_thread(self) -> None:
        """A checkpoint on a worker thread. Cancelling the task cannot stop the thread, so a cancelled
        wait still waits for it: `close` must not close the connection the thread is using (SQLite
        then crashes the process: seen at the end of a rebuild, a segmentation fault)."""
        checkpointing = asyncio.ensure_future(asyncio.to_thread(self.checkpoint))
        try:
            await asyncio.shield(checkpointing)
        except asyncio.CancelledError:
            with suppress(sqlite3.Error):
                await checkpointing
            raise

    def checkpoint(self) -> None:
        """One PASSIVE checkpoint: copies what no reader still needs, never waits for a writer or reader.
        Through SQLite's own connection, which shares the process's locks instead of dropping them."""
        if self._connection is None:
            self._connection = sqlite3.connect(self.database, timeout=1, check_same_thread=False)
        self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1

    def _close_connection(self) -> None:
        if self._connection is not None:
            with suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None


def background_checkpoints(url: str) -> WalCheckpointer | None:
    """A checkpointer for a SQLite database file; None for PostgreSQL or an in-memory database."""
    if not is_sqlite(url):
        return None
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return WalCheckpointer(Path(database))
