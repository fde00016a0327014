"""SQLite's WAL checkpoints off the commit path (`kpi_common.checkpoints`), on a real database file:
an engine made with autocheckpoint=False leaves the log to the checkpointer, which copies it into the
database once it holds SQLite's own threshold of frames, while writes go on."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from sqlalchemy import text

from kpi_common.checkpoints import WalCheckpointer, background_checkpoints
from kpi_common.db import make_engine
from kpi_common.fresh_database import _sqlite_unused

ROW = "x" * 3000  # about a page a row


async def test_commits_leave_the_log_to_the_checkpointer(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    url = f"sqlite+aiosqlite:///{database}"
    checkpointer = background_checkpoints(url)
    assert checkpointer is not None and checkpointer.database == database
    engine = make_engine(url, autocheckpoint=False)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE pages (body TEXT)"))
        await connection.execute(text("INSERT INTO pages VALUES (:body)"), [{"body": ROW}] * 1500)
    # SQLite would have checkpointed in that commit; this engine's commits never do
    assert checkpointer.pending_frames() >= 1500
    checkpointer.start()
    try:
        for _ in range(100):
            if checkpointer.pending_frames() == 0:
                break
            await asyncio.sleep(0.05)
        assert checkpointer.pending_frames() == 0 and checkpointer.checkpoints == 1
        # a few frames wait for the threshold; the next thousand are copied again
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO pages VALUES (:body)"), [{"body": ROW}] * 10)
        await asyncio.sleep(0.3)
        assert 10 <= checkpointer.pending_frames() < WalCheckpointer.threshold_frames
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO pages VALUES (:body)"), [{"body": ROW}] * 1200)
        for _ in range(100):
            if checkpointer.checkpoints == 2:
                break
            await asyncio.sleep(0.05)
        assert checkpointer.checkpoints == 2
        async with engine.connect() as connection:
            assert (await connection.scalar(text("SELECT count(*) FROM pages"))) == 2710
    finally:
        await checkpointer.close(engine)


async def test_an_engine_left_to_checkpoint_itself_still_does(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    url = f"sqlite+aiosqlite:///{database}"
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE pages (body TEXT)"))
        await connection.execute(text("INSERT INTO pages VALUES (:body)"), [{"body": ROW}] * 1500)
    checkpointer = WalCheckpointer(database)
    try:
        assert checkpointer.pending_frames() == 0  # the commit checkpointed
    finally:
        await checkpointer.close(engine)


def test_only_a_sqlite_file_is_checkpointed_from_outside() -> None:
    assert background_checkpoints("postgresql+asyncpg://ledger@localhost/ingest") is None
    assert background_checkpoints("sqlite+aiosqlite:///:memory:") is None


async def test_a_projection_service_checkpoints_outside_its_batches(tmp_path: Path) -> None:
    """Scoring and reporting commit a batch at a time (20,000 events in a rebuild): their engines
    leave the log to the service's checkpointer, which runs from `start` to `close`."""
    from kpi_common.projection_service import build_projection_service
    from kpi_scoring.adapters.orm import consumer_positions, dead_letters

    async def apply(*_: object) -> None:
        return None

    database = tmp_path / "scoring.db"
    service = build_projection_service(
        database_url=f"sqlite+aiosqlite:///{database}",
        nats_url="nats://127.0.0.1:1",  # never reached: nothing here follows a stream
        consumer="checkpoints-test",
        replicas=1,
        positions=consumer_positions,
        dead_letters=dead_letters,
        apply=apply,
    )
    checkpointer = service.checkpoints
    assert checkpointer is not None and checkpointer.database == database
    async with service.engine.begin() as connection:
        assert await connection.scalar(text("PRAGMA wal_autocheckpoint")) == 0
        await connection.execute(text("CREATE TABLE pages (body TEXT)"))
        await connection.execute(text("INSERT INTO pages VALUES (:body)"), [{"body": ROW}] * 1500)
    assert checkpointer.pending_frames() >= 1500
    checkpointer.start()  # what `service.start()` does first, without the followers
    try:
        for _ in range(100):
            if checkpointer.pending_frames() == 0:
                break
            await asyncio.sleep(0.05)
        assert checkpointer.pending_frames() == 0
    finally:
        await service.close()
    assert checkpointer.checkpoints == 1


async def test_reading_the_log_index_keeps_the_lock_that_says_the_database_is_in_use(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
    own included: the checkpointer keeps the index open while the service's connections are, so
    another process (a rebuild) still sees the database in use, and it lets go only after them."""
    import subprocess
    import sys

    database = tmp_path / "scoring.db"
    url = f"sqlite+aiosqlite:///{database}"
    engine = make_engine(url, autocheckpoint=False)
    checkpointer = WalCheckpointer(database)
    probe = (
        "import sys; from kpi_common.fresh_database import DatabaseInUse, _sqlite_unused\n"
        "try:\n    _sqlite_unused(sys.argv[1])\nexcept DatabaseInUse:\n    sys.exit(3)\n"
    )

    def in_use_elsewhere() -> bool:
        return subprocess.run([sys.executable, "-c", probe, str(database)], check=False).returncode == 3

    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE pages (body TEXT)"))
        await connection.execute(text("INSERT INTO pages VALUES (:body)"), [{"body": ROW}] * 10)
    async with engine.connect() as connection:  # a connection the pool keeps open
        await connection.execute(text("SELECT count(*) FROM pages"))
        for _ in range(3):
            checkpointer.pending_frames()
        await asyncio.to_thread(checkpointer.checkpoint)
        assert in_use_elsewhere()
    assert in_use_elsewhere()  # the pool still holds its connection
    await checkpointer.close(engine)
    assert not in_use_elsewhere()
    _sqlite_unused(str(database))  # nor does this process hold it any more


class SlowCheckpointer(WalCheckpointer):
    """A checkpoint that takes long enough for the service to be closed while it runs."""

    started: threading.Event
    finished: threading.Event

    def checkpoint(self) -> None:
        self.started.set()
        time.sleep(0.3)
        super().checkpoint()
        self.finished.set()


async def test_closing_waits_for_a_checkpoint_in_progress(tmp_path: Path) -> None:
    """Cancelling the checkpointer cannot stop its thread; closing must not close the connection
    under it (SQLite crashed the process: a segmentation fault at the end of a rebuild)."""
    database = tmp_path / "scoring.db"
    engine = make_engine(f"sqlite+aiosqlite:///{database}", autocheckpoint=False)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE pages (body TEXT)"))
        await connection.execute(text("INSERT INTO pages VALUES (:body)"), [{"body": ROW}] * 20)
    checkpointer = SlowCheckpointer(database, threshold_frames=1, interval_seconds=0.01)
    checkpointer.started, checkpointer.finished = threading.Event(), threading.Event()
    checkpointer.start()
    assert await asyncio.to_thread(checkpointer.started.wait, 5)
    await checkpointer.close(engine)
    assert checkpointer.finished.is_set()  # the checkpoint ended before its connection was closed
    assert checkpointer.checkpoints == 1
