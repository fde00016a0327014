"""The reference sync consumer: follows the stream into a JSON Lines file, from the file's own position.

It is what a national DTI sync job needs to copy: every event exactly once, in sequence order,
across stops, crashes and redeliveries. The file is the consumer's own store and its position:
one CloudEvent per line; the last complete line says where to resume.

A placeholder the relay published in place of an event it could not publish (`vn.kpi.event.withheld.v1`)
is copied as the stream holds it, at its position (its type says what it is: never the event), and
recorded as a dead letter of the copy: a line in `<out>.dead-letters` and one error in the log.

    kpi-ledger sync --nats nats://127.0.0.1:4222 --durable national-sync --out national.jsonl
    kpi-ledger sync --stream scores --out national-scores.jsonl    # the official scores, as scoring computed them
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from nats.js import JetStreamContext

from kpi_common.consumer import BatchResult, FollowerStats, run_consumer
from kpi_common.messaging import close_quietly, connect
from kpi_common.progress import ProgressLine
from kpi_common.streams import EVENTS, Stream, ensure_stream, head_sequence
from kpi_core.events import EventEnvelope, EventWithheld

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 0.5  # the progress line is shown at least this often


class JsonLinesCopy:
    """A projection into a file: each batch appended, flushed and fsynced; the last line is the position."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dead_letters = path.with_name(path.name + ".dead-letters")
        self.last_sequence = self._recover()

    def _recover(self) -> int:
        """Drop a line cut short by a crash, and return the sequence of the last complete line."""
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return 0
        content = self.path.read_bytes()
        complete = content[: content.rfind(b"\n") + 1]
        if complete != content:
            with self.path.open("r+b") as handle:
                handle.truncate(len(complete))
        lines = complete.splitlines()
        return int(json.loads(lines[-1])["sequence"]) if lines else 0

    async def last_applied(self) -> int:
        return self.last_sequence

    async def apply_batch(self, envelopes: Sequence[EventEnvelope]) -> BatchResult:
        fresh = [envelope for envelope in envelopes if envelope.sequence > self.last_sequence]
        if not fresh:
            return BatchResult(0)
        withheld = [envelope for envelope in fresh if envelope.type == EventWithheld.type]
        if withheld:  # recorded before the copy moves past them (a crash in between records one twice)
            self._record_withheld(withheld)
        with self.path.open("ab") as handle:
            handle.write(b"".join(envelope.to_bytes() + b"\n" for envelope in fresh))
            handle.flush()
            os.fsync(handle.fileno())
        self.last_sequence = fresh[-1].sequence
        return BatchResult(len(fresh))

    def _record_withheld(self, placeholders: Sequence[EventEnvelope]) -> None:
        lines = []
        for envelope in placeholders:
            reason = str(envelope.data.get("reason"))
            log.error("sync: event %s was withheld from the stream (%s); dead-lettered", envelope.sequence, reason)
            letter = {
                "sequence": envelope.sequence,
                "event_id": envelope.id,
                "reason": reason,
                "withheld": envelope.data,
            }
            lines.append(json.dumps(letter, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
        with self.dead_letters.open("ab") as handle:
            handle.write(b"".join(lines))
            handle.flush()
            os.fsync(handle.fileno())

    async def skip(self, envelope: EventEnvelope, reason: str) -> None:
        raise RuntimeError(f"event {envelope.sequence} cannot be copied: {reason}")  # a copy never skips


async def follow(nats_url: str, durable: str, out: Path, stream: Stream = EVENTS, *, progress: bool = True) -> None:
    copy = JsonLinesCopy(out)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    client = await connect(nats_url, f"kpi-sync-{durable}")
    stats = FollowerStats()
    showing = asyncio.create_task(_show_progress(client.jetstream(), stream, stats, stop)) if progress else None
    try:
        await ensure_stream(client.jetstream(), stream=stream)
        await run_consumer(client.jetstream(), durable, copy, stop, stream=stream, stats=stats)
    finally:
        stop.set()
        if showing is not None:
            await asyncio.gather(showing, return_exceptions=True)
        await close_quietly(client)


async def _show_progress(js: JetStreamContext, stream: Stream, stats: FollowerStats, stop: asyncio.Event) -> None:
    """The copy's position against the stream's head, every `PROGRESS_SECONDS` and when a batch lands."""
    line: ProgressLine | None = None
    try:
        while not stop.is_set():
            stats.moved.clear()
            with contextlib.suppress(Exception):  # NATS away: the consumer says so; the line waits
                head = await head_sequence(js, stream)
                if line is None:
                    line = ProgressLine(start_position=stats.position)
                line.show(stats.position, max(head, stats.position))
            waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(stats.moved.wait())}
            await asyncio.wait(waits, timeout=PROGRESS_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
    finally:
        if line is not None:
            line.end()
