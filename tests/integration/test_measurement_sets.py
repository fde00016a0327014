"""Measurement sets on SQLite and PostgreSQL, through the real handler and the real log: one
transaction, each measurement its own event in the hash chain, nothing half-written, idempotent,
and in step with single measurements appended concurrently."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_events
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_core.commands import ClosePeriod, RecordMeasurement, ReopenUnit, VerifyMeasurement
from kpi_core.events import EventEnvelope, MeasurementRecorded, decode_event, envelope_for
from kpi_core.measurement_sets import ImportSet, RowError, SetRow, SetScope
from kpi_core.verification_sets import VerifyUnit
from kpi_ingest.adapters.event_store import EventStore, canonical_envelope
from kpi_ingest.adapters.orm import events, measurement_sets, outbox
from kpi_ingest.service_layer import audit, handlers, workflow
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.errors import IdempotencyConflict
from kpi_ingest.service_layer.measurement_sets import SetRefused, import_measurement_set
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_ingest.service_layer.units import RegistryCache
from kpi_ingest.service_layer.verification_sets import verify_unit
from tests.integration.helpers import SOME_PROVINCES

SCOPE = SetScope("mini-dti", "1.0", 2024)
Sessions = async_sessionmaker[AsyncSession]


def rows_of(count: int, value: int = 1) -> list[SetRow | RowError]:
    """`count` rows: for each province, 3.1 and 3.2 (ratios) and 1.2 (yes/no)."""
    found: list[SetRow | RowError] = []
    for index in range(count):
        unit = SOME_PROVINCES[index // 3 % len(SOME_PROVINCES)]
        code, inputs = [("3.1", {"a": value, "b": 10}), ("3.2", {"a": "0", "b": 4}), ("1.2", {"a": True})][index % 3]
        found.append(SetRow(index + 1, unit, code, inputs))
    return found


def command(rows: list[SetRow | RowError], key: str, **options: Any) -> ImportSet:
    content = str([(row.row, getattr(row, "inputs", None)) for row in rows])
    return ImportSet(
        scope=SCOPE, rows=rows, content_sha256=content, idempotency_key=key, submitted_by="reporter", **options
    )


async def counts(sessions: Sessions) -> tuple[int, int, int]:
    async with sessions() as session:
        return (
            int(await session.scalar(select(func.count()).select_from(events)) or 0),
            int(await session.scalar(select(func.count()).select_from(outbox)) or 0),
            int(await session.scalar(select(func.count()).select_from(measurement_sets)) or 0),
        )


async def run(sessions: Sessions, registry: CatalogueRegistry, request: ImportSet) -> dict[str, Any]:
    imported = await import_measurement_set(request, UnitOfWork(sessions), registry, RegistryCache())
    return imported.summary | {"replayed": imported.replayed}


async def test_a_set_is_one_batch_of_ordinary_events_in_the_hash_chain(ingest_sessions: Any) -> None:
    sessions, registry = ingest_sessions
    before = await counts(sessions)
    summary = await run(sessions, registry, command(rows_of(6), "set-1"))
    assert (summary["imported"], summary["stored"]) == (6, True)
    assert await counts(sessions) == (before[0] + 6, before[1] + 6, 1)
    assert summary["last_sequence"] - summary["first_sequence"] == 5
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.ok and report.head_sequence == summary["last_sequence"]
    async with sessions() as session:
        stored = (
            await session.execute(select(events.c.envelope).where(events.c.sequence >= summary["first_sequence"]))
        ).scalars()
        envelopes = [EventEnvelope.model_validate_json(raw) for raw in stored]
    decoded = [decode_event(envelope) for envelope in envelopes]
    assert all(isinstance(event, MeasurementRecorded) for event in decoded)
    assert [envelope.sequence for envelope in envelopes] == list(
        range(summary["first_sequence"], summary["last_sequence"] + 1)
    )
    # the batch writes exactly the bytes a single append would have written for the same envelope
    for envelope, event in zip(envelopes, decoded, strict=True):
        assert isinstance(event, MeasurementRecorded)
        single = envelope_for(event, event_id=envelope.id, sequence=envelope.sequence, recorded_at=envelope.time)
        shown = single.model_dump(mode="json")["time"]
        assert canonical_envelope(event, envelope.id, envelope.sequence, shown) == single.to_bytes()


async def test_an_atomic_set_with_a_refused_row_stores_nothing_and_partial_stores_the_rest(
    ingest_sessions: Any,
) -> None:
    sessions, registry = ingest_sessions
    rows = rows_of(5)
    rows[1] = SetRow(2, "gia-lai", "9.9", {"a": 1})  # no such indicator
    rows[3] = SetRow(4, "atlantis", "3.1", {"a": 1, "b": 2})  # not a province
    rows.append(RowError(6, "inputs.a", "unreadable cell"))  # as a file reader reports a row
    before = await counts(sessions)
    with pytest.raises(SetRefused) as refused:
        await run(sessions, registry, command(rows, "atomic"))
    assert {(error["row"], error["field"]) for error in refused.value.summary["errors"]} == {
        (2, "indicator"),
        (4, "unit_id"),
        (6, "inputs.a"),
    }
    assert await counts(sessions) == before
    dry = await run(sessions, registry, command(rows, "dry", mode="partial", dry_run=True))
    assert (dry["imported"], dry["refused"], dry["stored"]) == (3, 3, False)
    assert await counts(sessions) == before
    partial = await run(sessions, registry, command(rows, "partial", mode="partial"))
    assert (partial["imported"], partial["refused"], partial["stored"]) == (3, 3, True)
    assert (await counts(sessions))[0] == before[0] + 3


async def test_the_same_key_replays_a_changed_value_is_a_correction_and_unchanged_rows_store_nothing(
    ingest_sessions: Any,
) -> None:
    sessions, registry = ingest_sessions
    first = await run(sessions, registry, command(rows_of(6), "year"))
    replay = await run(sessions, registry, command(rows_of(6), "year"))
    assert replay["replayed"] and replay["set_id"] == first["set_id"]
    with pytest.raises(IdempotencyConflict):
        await run(sessions, registry, command(rows_of(6, value=2), "year"))
    events_before, outbox_before, sets_before = await counts(sessions)
    again = await run(sessions, registry, command(rows_of(6), "year-again"))
    assert (again["unchanged"], again["stored"]) == (6, False)
    # no event, nothing to publish, no record: nothing in the log could prove one (see the test below)
    assert await counts(sessions) == (events_before, outbox_before, sets_before)
    changed = await run(sessions, registry, command(rows_of(6, value=2), "year-changed"))
    assert (changed["replaced"], changed["unchanged"]) == (2, 4)  # the two 3.1 rows changed
    # a single POST with the same value as the set is the same statement: a later set sees it unchanged
    single = RecordMeasurement(
        catalogue_id="mini-dti",
        catalogue_version="1.0",
        period=2024,
        unit_id=SOME_PROVINCES[0],
        indicator="3.1",
        inputs={"a": "3.0", "b": 10},
        idempotency_key="single",
        submitted_by="reporter",
    )
    await handlers.record_measurement(single, UnitOfWork(sessions), registry, RegistryCache())
    rows = [SetRow(1, SOME_PROVINCES[0], "3.1", {"a": 3, "b": "10.0"})]
    assert (await run(sessions, registry, command(rows, "after-single")))["unchanged"] == 1


async def test_a_set_that_changed_nothing_holds_no_key_and_answers_the_same_when_repeated(
    ingest_sessions: Any,
) -> None:
    """A set that stores nothing keeps no record (the log holds nothing that could prove one): sent
    again under its key it is compared with the log again, answers the same, and stores nothing;
    with other content the key imports it, as a key that never stored anything does."""
    sessions, registry = ingest_sessions
    await run(sessions, registry, command(rows_of(6), "first"))
    before = await counts(sessions)
    unchanged = await run(sessions, registry, command(rows_of(6), "nothing-new"))
    assert (unchanged["unchanged"], unchanged["stored"], unchanged["replayed"]) == (6, False, False)
    again = await run(sessions, registry, command(rows_of(6), "nothing-new"))
    assert again == unchanged
    assert await counts(sessions) == before
    changed = await run(sessions, registry, command(rows_of(6, value=2), "nothing-new"))
    assert (changed["replaced"], changed["stored"]) == (2, True)


async def test_a_refused_set_leaves_its_key_free_for_the_corrected_set(ingest_sessions: Any) -> None:
    sessions, registry = ingest_sessions
    refused_rows = [*rows_of(2), SetRow(3, SOME_PROVINCES[0], "9.9", {"a": 1})]
    with pytest.raises(SetRefused):
        await run(sessions, registry, command(refused_rows, "corrected"))
    corrected = await run(sessions, registry, command(rows_of(2), "corrected"))
    assert (corrected["imported"], corrected["stored"], corrected["replayed"]) == (2, True, False)


async def test_a_dry_run_does_not_take_the_append_lock(ingest_sessions: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sessions, registry = ingest_sessions
    locks: list[str] = []

    async def lock(store: EventStore) -> None:
        locks.append("lock")
        await real_lock(store)

    real_lock = EventStore.lock
    monkeypatch.setattr(EventStore, "lock", lock)
    before = await counts(sessions)
    dry = await run(sessions, registry, command(rows_of(6), "dry", dry_run=True))
    assert (dry["imported"], dry["stored"], dry["dry_run"]) == (6, False, True)
    assert locks == [] and await counts(sessions) == before
    real = await run(sessions, registry, command(rows_of(6), "real"))
    assert real["stored"] and locks  # a real import still takes it


async def test_a_dry_run_verification_set_does_not_take_the_append_lock(
    ingest_sessions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions, registry = ingest_sessions
    await run(sessions, registry, command(rows_of(3), "self-assessed"))
    locks: list[str] = []
    real_lock = EventStore.lock

    async def lock(store: EventStore) -> None:
        locks.append("lock")
        await real_lock(store)

    monkeypatch.setattr(EventStore, "lock", lock)
    acceptance = VerifyMeasurement(
        catalogue_id="mini-dti",
        catalogue_version="1.0",
        period=2024,
        unit_id=SOME_PROVINCES[0],
        indicator="*",
        decision="accepted",
        idempotency_key="verify",
        submitted_by="evaluator",
    )
    before = await counts(sessions)
    dry = await verify_unit(
        VerifyUnit(acceptance, (), "fp", dry_run=True), UnitOfWork(sessions), registry, RegistryCache()
    )
    assert (dry.summary["dry_run"], dry.stored) == (True, False)
    assert locks == [] and await counts(sessions) == before


async def test_a_closed_period_refuses_the_rows_of_units_not_reopened(ingest_sessions: Any) -> None:
    sessions, registry = ingest_sessions
    scope = {"catalogue_id": "mini-dti", "catalogue_version": "1.0", "period": 2024}
    await workflow.close_period(
        ClosePeriod(**scope, idempotency_key="close", closed_by="evaluator"),
        UnitOfWork(sessions),
        registry,
        RegistryCache(),
    )
    reopen = ReopenUnit(**scope, unit_id="kon-tum", reason="Gia hạn", idempotency_key="reopen", reopened_by="evaluator")
    await workflow.reopen_unit(reopen, UnitOfWork(sessions), registry, RegistryCache())
    rows: list[SetRow | RowError] = [SetRow(1, "gia-lai", "1.2", {"a": True}), SetRow(2, "kon-tum", "1.2", {"a": True})]
    partial = await run(sessions, registry, command(rows, "late", mode="partial"))
    assert (partial["imported"], partial["refused"]) == (1, 1)
    assert partial["errors"][0]["row"] == 1 and partial["errors"][0]["field"] == "period"


async def test_sets_and_single_posts_appended_concurrently_keep_one_gap_free_chain(ingest_sessions: Any) -> None:
    sessions, registry = ingest_sessions

    async def single(index: int) -> None:
        measurement = RecordMeasurement(
            catalogue_id="mini-dti",
            catalogue_version="1.0",
            period=2023,
            unit_id=SOME_PROVINCES[index % 5],
            indicator="3.2",
            inputs={"a": index, "b": 100},
            idempotency_key=f"single-{index}",
            submitted_by="reporter",
        )
        await handlers.record_measurement(measurement, UnitOfWork(sessions), registry, RegistryCache())

    sets = [run(sessions, registry, command(rows_of(15, value=index), f"concurrent-{index}")) for index in range(4)]
    done = await asyncio.gather(*sets, *(single(index) for index in range(20)))
    stored = [summary for summary in done[:4] if summary and summary["stored"]]
    assert stored  # the first set imports; the others correct or change nothing
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.ok
    async with sessions() as session:
        sequences = list((await session.execute(select(events.c.sequence).order_by(events.c.sequence))).scalars())
    assert sequences == list(range(1, len(sequences) + 1))


async def test_a_set_is_compared_with_its_own_period_read_as_a_range_of_the_subject_index(
    ingest_sessions: Any,
) -> None:
    """Under the append lock a set reads the latest measurements of its units in its period: from
    the subject index, not by reading every event of the catalogue (a national log holds years of
    them) and matching the subject against a pattern."""
    sessions, registry = ingest_sessions
    year = rows_of(6)
    await run(sessions, registry, command(year, "2024"))
    later = ImportSet(
        scope=SetScope("mini-dti", "1.0", 2023),
        rows=year,
        content_sha256="2023",
        idempotency_key="2023",
        submitted_by="reporter",
    )
    assert (await run(sessions, registry, later))["imported"] == 6  # another period: nothing to compare with
    engine = sessions.kw["bind"]
    statements: list[tuple[str, Any]] = []

    def seen(_connection: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if "FROM events" in statement and "events.subject" in statement:
            statements.append((statement, parameters))

    sqlalchemy_events.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        again = await run(sessions, registry, command(rows_of(6), "2024-again"))
    finally:
        sqlalchemy_events.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert (again["unchanged"], again["imported"]) == (6, 0)  # compared with 2024, not with 2023
    (statement, parameters), *_ = statements
    postgres = engine.dialect.name == "postgresql"
    async with engine.connect() as connection:
        if postgres:  # a few rows: a sequential scan would be cheaper, so say which index it can use
            await connection.exec_driver_sql("SET enable_seqscan = off")
        plan = await connection.exec_driver_sql(
            ("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + statement, parameters
        )
        shown = " ".join(str(part) for row in plan for part in row)
    assert "ix_events_subject" in shown, shown
    assert "SCAN events" not in shown and "Seq Scan" not in shown, shown
