"""A sync copy as a witness of the log (issue 16), on SQLite and PostgreSQL: a national copy made by
`kpi-ledger sync` proves, on its own, a later truncation or a rewritten event that leaves the
database consistent with itself, even when the stream is not asked (its holder need not trust
this system's NATS)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import nats

from kpi_common.consumer import run_consumer
from kpi_common.sync import JsonLinesCopy
from kpi_ingest.entrypoints.outbox_relay import OutboxRelay
from kpi_ingest.service_layer import audit
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from tests.integration.helpers import wait_until
from tests.integration.test_audit_chain import log  # noqa: F401 (the fixture)
from tests.integration.test_relay_batches import run_until_drained
from tests.integration.test_stream_witness import rewrite_from


async def national_copy(sessions, nats_url: str, path: Path) -> Path:  # type: ignore[no-untyped-def]
    """The log relayed to the stream and copied by the reference sync consumer, as a national job holds it."""
    await run_until_drained(sessions, OutboxRelay(sessions, nats_url))
    copy, stop = JsonLinesCopy(path), asyncio.Event()
    client = await nats.connect(nats_url)
    following = asyncio.create_task(run_consumer(client.jetstream(), "national", copy, stop))

    async def reached() -> bool:
        return copy.last_sequence == 10

    await wait_until(reached, timeout=30)
    stop.set()
    await following
    await client.close()
    return path


async def held_to(sessions, path: Path) -> audit.VerifyReport:  # type: ignore[no-untyped-def]
    report = await audit.verify_log(UnitOfWork(sessions), stream_unavailable="not asked")
    await audit.compare_with_copies(UnitOfWork(sessions), report, [path])
    return report


async def test_an_untouched_log_agrees_with_its_sync_copy(log, nats_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sessions, _ = log
    copy = await national_copy(sessions, nats_url, tmp_path / "national.jsonl")
    report = await held_to(sessions, copy)
    assert report.ok, report.first_break
    assert report.copies == [{"path": str(copy), "compared": True, "messages": 10, "last_sequence": 10}]


async def test_a_truncation_with_the_counter_wound_back_is_proven_by_the_copy_alone(  # type: ignore[no-untyped-def]
    log,  # noqa: F811
    nats_url: str,
    tmp_path: Path,
) -> None:
    sessions, _ = log
    copy = await national_copy(sessions, nats_url, tmp_path / "national.jsonl")
    await rewrite_from(sessions, edited=0, upto=7)
    report = await held_to(sessions, copy)
    assert not report.ok and report.first_break is not None
    assert (report.first_break["sequence"], report.first_break["witness"]) == (8, str(copy))
    assert "the sync copy holds events the database does not" in report.first_break["problem"]


async def test_an_event_rewritten_with_every_hash_recomputed_is_proven_by_the_copy(  # type: ignore[no-untyped-def]
    log,  # noqa: F811
    nats_url: str,
    tmp_path: Path,
) -> None:
    sessions, _ = log
    copy = await national_copy(sessions, nats_url, tmp_path / "national.jsonl")
    await rewrite_from(sessions, edited=3)
    report = await held_to(sessions, copy)
    assert report.first_break is not None and report.first_break["sequence"] == 3
    assert report.first_break["problem"] == "the stored event differs from its copy in the sync copy"


async def test_a_copy_that_lags_proves_what_it_holds_and_an_unreadable_one_is_named(  # type: ignore[no-untyped-def]
    log,  # noqa: F811
    nats_url: str,
    tmp_path: Path,
) -> None:
    sessions, _ = log
    full = await national_copy(sessions, nats_url, tmp_path / "national.jsonl")
    lines = full.read_bytes().splitlines(keepends=True)
    lagging = tmp_path / "lagging.jsonl"
    lagging.write_bytes(b"".join(lines[:6]) + lines[6][:20])  # six events and a line cut short by a crash
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_bytes(b"not an event\n")
    report = await audit.verify_log(UnitOfWork(sessions), stream_unavailable="not asked")
    await audit.compare_with_copies(UnitOfWork(sessions), report, [lagging, garbled])
    assert report.ok
    assert report.copies is not None and report.copies[0]["last_sequence"] == 6
    assert report.copies[1]["compared"] is False
    assert any(f"the sync copy {garbled} was not compared" in warning for warning in report.warnings)


async def test_the_command_line_verification_holds_the_log_to_a_copy(  # type: ignore[no-untyped-def]
    log,  # noqa: F811
    nats_url: str,
    database_url: str,
    tmp_path: Path,
) -> None:
    sessions, _ = log
    copy = await national_copy(sessions, nats_url, tmp_path / "national.jsonl")
    await rewrite_from(sessions, edited=0, upto=7)
    command = [sys.executable, "-m", "kpi_launcher.cli", "verify", "--database-url", database_url, "--no-stream"]
    done = subprocess.run([*command, "--copy", str(copy)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["first_break"]["sequence"] == 8 and report["copies"][0]["compared"] is True
