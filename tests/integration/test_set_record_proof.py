"""The record of measurement sets (what a repeated set is answered with) proven by the log, on
SQLite and PostgreSQL: every edit of the record made directly in the database is reported at the
set's first sequence (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_core.measurement_sets import ImportSet, SetRow, SetScope
from kpi_ingest.service_layer import audit
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.measurement_sets import import_measurement_set
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_ingest.service_layer.units import RegistryCache
from tests.integration.helpers import SOME_PROVINCES, record_some

Sessions = async_sessionmaker[AsyncSession]


def year_set(key: str, value: int) -> ImportSet:
    rows = [SetRow(index + 1, unit, "3.1", {"a": value, "b": 10}) for index, unit in enumerate(SOME_PROVINCES[:3])]
    return ImportSet(
        scope=SetScope("mini-dti", "1.0", 2024),
        rows=rows,
        content_sha256=f"content-{key}-{value}",
        idempotency_key=key,
        submitted_by="reporter",
    )


async def imported(sessions: Sessions, registry: CatalogueRegistry, request: ImportSet) -> dict[str, Any]:
    return (await import_measurement_set(request, UnitOfWork(sessions), registry, RegistryCache())).summary


@pytest.fixture
async def log_with_sets(ingest_sessions) -> tuple[Sessions, dict[str, Any], dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Single measurements (sequences 3 to 6), a set (7 to 9), a single one, a second set (11 to 13)."""
    sessions, registry = ingest_sessions
    await record_some(lambda: UnitOfWork(sessions), registry, 4)
    first = await imported(sessions, registry, year_set("year", 1))
    await record_some(lambda: UnitOfWork(sessions), registry, 1, start=4)
    second = await imported(sessions, registry, year_set("year-corrected", 2))
    return sessions, first, second


async def edit(sessions: Sessions, statement: str, **parameters: object) -> None:
    async with sessions() as session:  # the record has no append-only guard: it is proven, not guarded
        await session.execute(text(statement), parameters)
        await session.commit()


async def test_sets_verify_and_their_events_carry_the_record_s_hashes(log_with_sets) -> None:  # type: ignore[no-untyped-def]
    sessions, first, second = log_with_sets
    assert (first["first_sequence"], first["last_sequence"], second["first_sequence"]) == (7, 9, 11)
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.ok, report.first_break
    assert not [warning for warning in report.warnings if "set records" in warning]
    async with UnitOfWork(sessions) as uow:
        envelopes = [stored.envelope for stored in await uow.events.read_after(6, 3)]
    assert {envelope.setsummarysha256 for envelope in envelopes} != {None}
    assert len({envelope.setsummarysha256 for envelope in envelopes}) == 1  # one summary for the set


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ("UPDATE measurement_sets SET summary = replace(summary, :was, :now)", "summary"),
        ("UPDATE measurement_sets SET idempotency_key = 'someone-else-s-key'", "idempotency_key"),
        ("UPDATE measurement_sets SET request_sha256 = :other", "request_sha256"),
        ("UPDATE measurement_sets SET actor = 'intruder'", "actor"),
        ("UPDATE measurement_sets SET set_id = 'forged-set-id'", "set_id"),
        ("UPDATE measurement_sets SET last_sequence = last_sequence - 1", "no set's events"),
        ("DELETE FROM measurement_sets", "record is missing"),
    ],
)
async def test_an_edited_or_deleted_set_record_is_reported_at_the_set_s_first_sequence(  # type: ignore[no-untyped-def]
    log_with_sets, statement: str, problem: str
) -> None:
    sessions, first, _ = log_with_sets
    values = {"other": "f" * 64, "was": '"stored":true', "now": '"stored":false', "first": first["first_sequence"]}
    await edit(sessions, statement + " WHERE first_sequence = :first", **values)
    report = await audit.verify_log(UnitOfWork(sessions))
    assert not report.ok and report.first_break is not None
    assert problem in report.first_break["problem"], report.first_break
    assert report.first_break["sequence"] == first["first_sequence"]


async def test_a_forged_set_record_answering_a_key_is_reported(log_with_sets) -> None:  # type: ignore[no-untyped-def]
    """A record slipped in to answer a set never stored (its key would then store nothing)."""
    sessions, _, _ = log_with_sets
    summary = '{"set_id":"forged","stored":true,"imported":3}'
    await edit(
        sessions,
        "INSERT INTO measurement_sets (set_id, actor, idempotency_key, request_sha256, first_sequence, "
        "last_sequence, summary) VALUES ('forged', 'reporter', 'next-year', :hash, 10, 10, :summary)",
        hash="a" * 64,
        summary=summary,
    )
    report = await audit.verify_log(UnitOfWork(sessions))
    assert not report.ok and report.first_break is not None
    assert (report.first_break["sequence"], "no set's events" in report.first_break["problem"]) == (10, True)


async def test_a_repeated_set_is_answered_from_its_proven_record(ingest_sessions) -> None:  # type: ignore[no-untyped-def]
    sessions, registry = ingest_sessions
    first = await imported(sessions, registry, year_set("year", 1))
    repeated = await import_measurement_set(year_set("year", 1), UnitOfWork(sessions), registry, RegistryCache())
    assert repeated.replayed and repeated.summary == first
