"""The Idempotency-Key and request hash of each event (issue 16), on SQLite and PostgreSQL: they decide
what a retried request is answered, so they are inside the hashed bytes (as SHA-256s, in envelope
extensions) and checked against them: by `verify`, which names the first sequence affected, and by
the retry itself, which is never answered with an event its key was moved to. Events stored before
the extensions existed cannot be proven, and the report says so."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_core.audit import GENESIS_SHA256
from kpi_core.commands import RecordMeasurement, RegisterCatalogueVersion
from kpi_core.events import EventEnvelope
from kpi_ingest.adapters.event_store import EventTampered
from kpi_ingest.service_layer import audit, handlers
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_ingest.service_layer.units import RegistryCache
from tests.conftest import fixture_catalogue
from tests.integration.helpers import SOME_PROVINCES, record_some
from tests.integration.test_audit_chain import bypass, log  # noqa: F401 (the fixture)

Sessions = async_sessionmaker[AsyncSession]


def retry_of(index: int) -> RecordMeasurement:
    """The request `record_some` sent as its `index`th, again."""
    return RecordMeasurement(
        catalogue_id="mini-dti",
        catalogue_version="1.0",
        period=2024,
        unit_id=SOME_PROVINCES[index % 5],
        indicator="3.1",
        inputs={"a": index, "b": 1000},
        idempotency_key=f"key-{index}",
        submitted_by="tester",
    )


async def retry(sessions: Sessions, registry: CatalogueRegistry, index: int) -> handlers.Recorded:
    return await handlers.record_measurement(retry_of(index), UnitOfWork(sessions), registry, RegistryCache())


async def test_an_envelope_records_the_hashes_of_its_key_and_body_never_the_key(log) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sessions, _ = log
    async with sessions() as session:
        row = (
            await session.execute(text("SELECT envelope, request_sha256 FROM events WHERE sequence = 3"))
        ).one()  # record_some's first, "key-0"
    envelope = EventEnvelope.from_bytes(row.envelope.encode("utf-8"))
    assert envelope.idempotencykeysha256 == hashlib.sha256(b"key-0").hexdigest()
    assert envelope.requestsha256 == row.request_sha256 == handlers.request_fingerprint(retry_of(0))
    assert "key-0" not in row.envelope


async def test_a_retry_is_never_answered_with_the_event_its_key_was_moved_to(log) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sessions, registry = log
    # key-1 (event 4) moved to event 7, with event 4's request hash: on the old main the retry of
    # request 1 was answered with event 7, someone else's measurement
    async with sessions() as session:
        fingerprint = (await session.execute(text("SELECT request_sha256 FROM events WHERE sequence = 4"))).scalar()
    await bypass(
        sessions,
        "UPDATE events SET idempotency_key = 'moved' WHERE sequence = 4",
        (
            "UPDATE events SET idempotency_key = 'key-1', request_sha256 = :fingerprint WHERE sequence = 7",
            {"fingerprint": fingerprint},
        ),
    )
    with pytest.raises(EventTampered) as tampered:
        await retry(sessions, registry, 1)
    assert tampered.value.sequence == 7
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.first_break is not None
    assert (report.first_break["sequence"], report.first_break["problem"]) == (
        4,
        "the stored column idempotency_key disagrees with the hashed event",
    )
    assert report.first_break["expected"] == hashlib.sha256(b"key-1").hexdigest()  # the key itself is never shown


async def test_an_edited_request_hash_column_does_not_change_what_a_retry_is_answered(log) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sessions, registry = log
    await bypass(sessions, f"UPDATE events SET request_sha256 = '{'0' * 64}' WHERE sequence = 5")
    replayed = await retry(sessions, registry, 2)  # on the old main: 409, "a different request"
    assert (replayed.replayed, replayed.event.sequence) == (True, 5)
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.first_break is not None
    assert (report.first_break["sequence"], report.first_break["problem"]) == (
        5,
        "the stored column request_sha256 disagrees with the hashed event",
    )


async def as_stored_before_the_extensions(sessions: Sessions) -> None:
    """The log as it was written before envelopes recorded their request: the same events without the
    extensions, every hash recomputed, the columns beside them kept."""
    async with sessions() as session:
        rows = (await session.execute(text("SELECT sequence, envelope FROM events ORDER BY sequence"))).all()
    chain, statements = GENESIS_SHA256, []
    rewrite = (
        "UPDATE events SET envelope = :envelope, event_sha256 = :digest, chain_sha256 = :chain "
        "WHERE sequence = :sequence"
    )
    for sequence, stored in rows:
        bare = EventEnvelope.from_bytes(stored.encode("utf-8")).model_copy(
            update={"requestid": None, "idempotencykeysha256": None, "requestsha256": None}
        )
        envelope = bare.to_bytes().decode("utf-8")
        digest = hashlib.sha256(envelope.encode("utf-8")).hexdigest()
        chain = hashlib.sha256(f"{chain}{digest}".encode("ascii")).hexdigest()
        statements.append((rewrite, {"envelope": envelope, "digest": digest, "chain": chain, "sequence": sequence}))
    statements.append(("UPDATE event_counter SET last_chain_sha256 = :chain", {"chain": chain}))
    await bypass(sessions, *statements)


async def test_events_stored_before_the_extensions_verify_with_a_warning_and_later_ones_are_checked(log) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sessions, registry = log
    await as_stored_before_the_extensions(sessions)
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.ok  # an old log still verifies...
    old = [warning for warning in report.warnings if "stored before envelopes recorded their request" in warning]
    assert old and old[0].startswith("8 events (sequences 3 to 10)")  # ...and says what it cannot prove
    await bypass(sessions, "UPDATE events SET idempotency_key = 'moved' WHERE sequence = 5")
    assert (await audit.verify_log(UnitOfWork(sessions))).ok  # nothing hashed says what it held

    await record_some(lambda: UnitOfWork(sessions), registry, 2, start=8)  # 11, 12: with the extensions
    assert (await audit.verify_log(UnitOfWork(sessions))).ok
    await bypass(sessions, "UPDATE events SET idempotency_key = 'moved-too' WHERE sequence = 12")
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.first_break is not None
    assert (report.first_break["sequence"], report.first_break["problem"]) == (
        12,
        "the stored column idempotency_key disagrees with the hashed event",
    )


async def test_after_the_first_event_with_the_extensions_an_event_without_them_has_no_key(log) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sessions, registry = log  # events 1 and 2 were stored without a key or a request: nothing to record
    await bypass(sessions, "UPDATE events SET idempotency_key = 'planted' WHERE sequence = 2")
    assert (await audit.verify_log(UnitOfWork(sessions))).ok  # before any event recorded a request: unproven
    await bypass(sessions, "UPDATE events SET idempotency_key = NULL WHERE sequence = 2")
    another = RegisterCatalogueVersion(document={**fixture_catalogue(), "version": "1.1"}, registered_by="admin")
    stored = await handlers.register_catalogue_version(another, UnitOfWork(sessions), registry)  # no key: 11
    await bypass(sessions, f"UPDATE events SET idempotency_key = 'planted' WHERE sequence = {stored.sequence}")
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.first_break is not None
    assert (report.first_break["sequence"], report.first_break["problem"]) == (
        stored.sequence,
        "the stored column idempotency_key disagrees with the hashed event",
    )
