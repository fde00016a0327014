"""The stream on NATS as a witness of the log (issue 16), on SQLite and PostgreSQL: two edits that leave a
database consistent with itself — the last events deleted with the counter wound back, and an event
rewritten with every hash after it recomputed — pass the chain walk and are found by the comparison
with the stream, with the first sequence affected. Without the stream, verification says what it
could not prove."""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_core.audit import GENESIS_SHA256
from kpi_ingest.entrypoints.outbox_relay import OutboxRelay
from kpi_ingest.service_layer import audit
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from tests.integration.helpers import record_some
from tests.integration.test_audit_chain import bypass, log  # noqa: F401 (the fixture)
from tests.integration.test_relay_batches import run_until_drained

Sessions = async_sessionmaker[AsyncSession]


async def rewrite_from(sessions: Sessions, edited: int, upto: int | None = None) -> None:
    """A careful forger: event `edited` changed, every hash after it recomputed, the counter's head too;
    with `upto`, the events after it deleted and the counter wound back to it."""
    async with sessions() as session:
        rows = (await session.execute(text("SELECT sequence, envelope FROM events ORDER BY sequence"))).all()
    chain, statements = GENESIS_SHA256, []
    rewrite = (
        "UPDATE events SET envelope = :envelope, event_sha256 = :digest, chain_sha256 = :chain "
        "WHERE sequence = :sequence"
    )
    last = upto or rows[-1][0]
    for sequence, envelope in rows:
        if sequence > last:
            break
        if sequence == edited:
            envelope = envelope.replace('"a":"0"', '"a":"999"')
            assert '"a":"999"' in envelope
        digest = hashlib.sha256(envelope.encode("utf-8")).hexdigest()
        chain = hashlib.sha256(f"{chain}{digest}".encode("ascii")).hexdigest()
        statements.append((rewrite, {"envelope": envelope, "digest": digest, "chain": chain, "sequence": sequence}))
    if upto is not None:
        statements += [f"DELETE FROM outbox WHERE sequence > {upto}", f"DELETE FROM events WHERE sequence > {upto}"]
    counter = "UPDATE event_counter SET last_chain_sha256 = :chain, last_sequence = :sequence"
    statements.append((counter, {"chain": chain, "sequence": last}))
    await bypass(sessions, *statements)


async def test_an_untouched_log_agrees_with_the_stream(log, nats_url: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sessions, _ = log
    await run_until_drained(sessions, OutboxRelay(sessions, nats_url))
    report = await audit.verify_with_stream(UnitOfWork(sessions), frozenset(), nats_url)
    assert report.ok and report.first_break is None
    assert report.stream == {"compared": True, "messages": 10, "last_sequence": 10}
    assert not any("stream" in warning for warning in report.warnings)
    assert any("no trusted checkpoint key" in warning for warning in report.warnings)


async def test_the_last_events_deleted_with_the_counter_wound_back_are_found(log, nats_url: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sessions, _ = log
    await run_until_drained(sessions, OutboxRelay(sessions, nats_url))
    await rewrite_from(sessions, edited=0, upto=7)
    alone = await audit.verify_log(UnitOfWork(sessions))
    assert alone.ok and alone.head_sequence == 7  # consistent with itself: the chain cannot tell
    assert any("not compared with the stream" in warning for warning in alone.warnings)
    report = await audit.verify_with_stream(UnitOfWork(sessions), frozenset(), nats_url)
    assert not report.ok and report.first_break is not None
    assert report.first_break["sequence"] == 8
    assert "the log was cut" in report.first_break["problem"]


async def test_an_event_rewritten_with_every_hash_recomputed_is_found(log, nats_url: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sessions, _ = log
    await run_until_drained(sessions, OutboxRelay(sessions, nats_url))
    await rewrite_from(sessions, edited=3)
    assert (await audit.verify_log(UnitOfWork(sessions))).first_break is None
    report = await audit.verify_with_stream(UnitOfWork(sessions), frozenset(), nats_url)
    assert report.first_break is not None
    assert (report.first_break["sequence"], report.first_break["problem"]) == (
        3,
        "the stored event differs from its copy on the stream",
    )


async def test_without_nats_the_report_says_what_it_could_not_prove(log) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sessions, _ = log
    report = await audit.verify_with_stream(UnitOfWork(sessions), frozenset(), "nats://127.0.0.1:1")
    assert report.ok  # the chain itself is intact
    assert report.stream["compared"] is False and "does not answer" in report.stream["reason"]
    assert any("not compared with the stream" in warning for warning in report.warnings)


async def test_an_event_whose_outbox_row_was_removed_before_it_was_relayed_is_found(log, nats_url: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sessions, _ = log
    await run_until_drained(sessions, OutboxRelay(sessions, nats_url))  # 1..10 on the stream
    await record_some(lambda: UnitOfWork(sessions), log[1], 3, start=8)  # 11..13 wait in the outbox
    await bypass(sessions, "DELETE FROM outbox WHERE sequence = 12")  # never to be relayed
    report = await audit.verify_with_stream(UnitOfWork(sessions), frozenset(), nats_url)
    assert report.first_break is not None
    assert (report.first_break["sequence"], report.first_break["found"]) == (12, "neither")
