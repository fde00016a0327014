"""Tamper evidence on SQLite and PostgreSQL: changes made directly in the database are found and pinpointed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_common.db import make_engine, session_factory
from kpi_common.migrations import upgrade
from kpi_common.signing import load_or_create_signer
from kpi_core.audit import GENESIS_SHA256
from kpi_core.commands import ClosePeriod
from kpi_ingest import MIGRATIONS_DIR
from kpi_ingest.service_layer import audit, workflow
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_ingest.service_layer.units import RegistryCache
from tests.integration.helpers import record_some

Statement = str | tuple[str, dict[str, object]]


async def bypass(sessions: async_sessionmaker[AsyncSession], *statements: Statement) -> None:
    """What an operator with database access could do: lift the guard and rewrite rows."""
    async with sessions() as session:
        sqlite = session.get_bind().dialect.name == "sqlite"
        if sqlite:
            await session.execute(text("DROP TRIGGER IF EXISTS events_append_only_update"))
            await session.execute(text("DROP TRIGGER IF EXISTS events_append_only_delete"))
        else:
            await session.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only_row"))
        for statement in statements:
            sql, parameters = (statement, {}) if isinstance(statement, str) else statement
            await session.execute(text(sql), parameters)
        await session.commit()


@pytest.fixture
async def log(ingest_sessions) -> tuple[async_sessionmaker[AsyncSession], CatalogueRegistry]:  # type: ignore[no-untyped-def]
    sessions, registry = ingest_sessions
    await record_some(lambda: UnitOfWork(sessions), registry, 8)  # after the unit list and the catalogue: 10 events
    return sessions, registry


async def test_an_untouched_log_verifies(log) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = log
    report = await audit.verify_log(UnitOfWork(sessions))
    assert (report.ok, report.events, report.head_sequence) == (True, 10, 10)
    assert report.head_sha256 != GENESIS_SHA256


async def test_an_edited_event_is_pinpointed(log) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = log
    await bypass(
        sessions, 'UPDATE events SET envelope = replace(envelope, \'"a":"3"\', \'"a":"300"\') WHERE sequence = 6'
    )
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.first_break is not None
    assert (report.ok, report.first_break["sequence"], report.first_break["problem"]) == (
        False,
        6,
        "event content does not match its hash",
    )
    assert report.head_sequence == 5


async def test_an_edit_with_its_hash_recomputed_breaks_the_chain(log) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = log
    async with sessions() as session:
        envelope = (await session.execute(text("SELECT envelope FROM events WHERE sequence = 4"))).scalar_one()
    forged = envelope.replace('"a":"1"', '"a":"100"')
    digest = hashlib.sha256(forged.encode("utf-8")).hexdigest()
    await bypass(
        sessions,
        (
            "UPDATE events SET envelope = :forged, event_sha256 = :digest WHERE sequence = 4",
            {"forged": forged, "digest": digest},
        ),
    )
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.first_break is not None
    assert (report.first_break["sequence"], report.first_break["problem"]) == (
        4,
        "chain hash does not follow its predecessor",
    )


async def test_a_deleted_event_is_found_missing(log) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = log
    await bypass(sessions, "DELETE FROM outbox WHERE sequence = 3", "DELETE FROM events WHERE sequence = 3")
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.first_break == {"sequence": 3, "problem": "missing event", "expected": "3", "found": "4"}


async def test_a_rewritten_history_contradicts_a_signed_checkpoint(log, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = log
    signer = load_or_create_signer(tmp_path / "key.pem")
    stored = (await audit.sign_checkpoint(UnitOfWork(sessions), signer, "admin", "checkpoint-1")).event
    assert (stored.sequence, stored.envelope.data["sequence"]) == (11, 10)
    assert (await audit.verify_log(UnitOfWork(sessions), frozenset({signer.public_key_hex}))).ok
    # Rewrite event 3 and recompute every hash after it, as a careful forger would.
    async with sessions() as session:
        rows = (await session.execute(text("SELECT sequence, envelope FROM events ORDER BY sequence"))).all()
    chain, statements = GENESIS_SHA256, []
    rewrite = (
        "UPDATE events SET envelope = :envelope, event_sha256 = :digest, chain_sha256 = :chain "
        "WHERE sequence = :sequence"
    )
    for sequence, envelope in rows:
        if sequence == 3:
            envelope = envelope.replace('"a":"0"', '"a":"999"')
        digest = hashlib.sha256(envelope.encode("utf-8")).hexdigest()
        chain = hashlib.sha256(f"{chain}{digest}".encode("ascii")).hexdigest()
        statements.append((rewrite, {"envelope": envelope, "digest": digest, "chain": chain, "sequence": sequence}))
    statements.append(("UPDATE event_counter SET last_chain_sha256 = :chain", {"chain": chain}))  # the head too
    await bypass(sessions, *statements)
    report = await audit.verify_log(UnitOfWork(sessions), frozenset({signer.public_key_hex}))
    assert report.first_break is None  # the chain itself is consistent again...
    assert report.checkpoints == [  # ...but no longer the one the operator signed
        {
            "sequence": 10,
            "event_sequence": 11,
            "signature_valid": True,
            "matches_chain": False,
            "trusted_key": True,
            "valid": False,
        }
    ]
    assert not report.ok


async def test_the_command_line_verification_exits_non_zero_on_a_break(log, database_url: str) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = log
    command = [sys.executable, "-m", "kpi_launcher.cli", "verify", "--database-url", database_url, "--no-stream"]
    assert subprocess.run(command, capture_output=True, check=False).returncode == 0
    await bypass(sessions, "UPDATE events SET actor = 'mallory', envelope = envelope || ' ' WHERE sequence = 7")
    broken = subprocess.run(command, capture_output=True, text=True, check=False)
    assert broken.returncode == 1
    assert '"sequence": 7' in broken.stdout


def test_the_migration_chains_events_stored_before_the_chain_existed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    upgrade(MIGRATIONS_DIR, url, "2026_11_24_0001")
    connection = sqlite3.connect(tmp_path / "old.db")
    for sequence in (1, 2, 3):
        connection.execute(
            "INSERT INTO events (sequence, event_id, type, subject, recorded_at, actor, envelope) "
            "VALUES (?, ?, 't', 's', 'r', 'a', ?)",
            (sequence, f"id-{sequence}", f'{{"sequence":{sequence}}}'),
        )
    connection.execute("UPDATE event_counter SET last_sequence = 3")
    connection.commit()
    connection.close()
    upgrade(MIGRATIONS_DIR, url)

    async def check() -> audit.VerifyReport:
        engine = make_engine(url)
        report = await audit.verify_log(UnitOfWork(session_factory(engine)))
        await engine.dispose()
        return report

    report = asyncio.run(check())
    assert (report.ok, report.events) == (True, 3)


async def test_the_last_events_deleted_are_found_missing(log) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = log
    await bypass(sessions, "DELETE FROM outbox WHERE sequence > 7", "DELETE FROM events WHERE sequence > 7")
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.first_break is not None and not report.ok
    assert report.first_break["sequence"] == 8 and "counter is ahead" in report.first_break["problem"]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("unit_id", "'kon-tum'"),
        ("actor", "'someone-else'"),
        ("type", "'x.other.v1'"),
        ("idempotency_key", "'key-never-sent'"),  # the retry with the real key would be stored again
        ("idempotency_key", "NULL"),
        ("request_sha256", f"'{'0' * 64}'"),  # the retry with the same body would be refused as another request
    ],
)
async def test_an_edited_column_beside_the_envelope_is_pinpointed(log, column: str, value: str) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = log
    await bypass(sessions, f"UPDATE events SET {column} = {value} WHERE sequence = 5")
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.first_break is not None
    assert (report.first_break["sequence"], report.first_break["problem"]) == (
        5,
        f"the stored column {column} disagrees with the hashed event",
    )


async def test_a_checkpoint_is_found_by_its_hashed_type_not_its_column(log, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = log
    signer = load_or_create_signer(tmp_path / "key.pem")
    await audit.sign_checkpoint(UnitOfWork(sessions), signer, "admin", "checkpoint-hidden")
    await bypass(sessions, "UPDATE events SET type = 'vn.kpi.measurement.recorded.v1' WHERE sequence = 11")
    report = await audit.verify_log(UnitOfWork(sessions), frozenset({signer.public_key_hex}))
    assert report.first_break is not None and report.first_break["sequence"] == 11
    assert [checkpoint["event_sequence"] for checkpoint in report.checkpoints] == [11]


def test_insert_or_replace_does_not_get_past_the_guard(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ingest.db'}"
    upgrade(MIGRATIONS_DIR, url)
    connection = sqlite3.connect(tmp_path / "ingest.db")
    connection.execute(
        "INSERT INTO events (sequence, event_id, type, subject, recorded_at, actor, envelope) "
        "VALUES (1, 'id-1', 't', 's', '2024-01-01T00:00:00.000000Z', 'a', '{}')"
    )
    connection.commit()
    for statement in (
        "INSERT OR REPLACE INTO events (sequence, event_id, type, subject, recorded_at, actor, envelope) "
        "VALUES (1, 'id-2', 't', 's', '2024-01-01T00:00:00.000000Z', 'a', '{\"forged\": true}')",
        "REPLACE INTO events (sequence, event_id, type, subject, recorded_at, actor, envelope) "
        "VALUES (2, 'id-1', 't', 's', '2024-01-01T00:00:00.000000Z', 'a', '{}')",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            connection.execute(statement)
    assert connection.execute("SELECT sequence, event_id, envelope FROM events").fetchall() == [(1, "id-1", "{}")]
    connection.close()


async def test_the_command_line_verification_honours_the_trusted_checkpoint_keys(  # type: ignore[no-untyped-def]
    log, database_url: str, tmp_path: Path
) -> None:
    sessions, _ = log
    operator = load_or_create_signer(tmp_path / "operator.pem")
    forger = load_or_create_signer(tmp_path / "forger.pem")
    await audit.sign_checkpoint(UnitOfWork(sessions), forger, "admin", "re-signed-by-a-new-key")
    command = [sys.executable, "-m", "kpi_launcher.cli", "verify", "--database-url", database_url, "--no-stream"]
    untrusted = {**os.environ, "KPI_INGEST_TRUSTED_CHECKPOINT_KEYS": json.dumps([operator.public_key_hex])}
    refused = subprocess.run(command, capture_output=True, text=True, check=False, env=untrusted)
    assert refused.returncode == 1 and '"trusted_key": false' in refused.stdout
    trusted = {**os.environ, "KPI_INGEST_TRUSTED_CHECKPOINT_KEYS": json.dumps([forger.public_key_hex])}
    assert subprocess.run(command, capture_output=True, check=False, env=trusted).returncode == 0


async def test_the_command_line_verification_says_loudly_what_it_could_not_prove(log, database_url: str) -> None:  # type: ignore[no-untyped-def]
    command = [sys.executable, "-m", "kpi_launcher.cli", "verify", "--database-url", database_url, "--no-stream"]
    environment = {name: value for name, value in os.environ.items() if name != "KPI_INGEST_TRUSTED_CHECKPOINT_KEYS"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    assert done.returncode == 0  # the chain is intact...
    assert "WARNING: no trusted checkpoint key is configured" in done.stderr  # ...but nothing vouches for it
    assert "WARNING: the log was not compared with the stream" in done.stderr
    assert json.loads(done.stdout)["stream"] == {"compared": False, "reason": "--no-stream"}


async def test_a_closed_periods_row_deleted_to_take_late_submissions_is_found(log, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sessions, registry = log
    command = ClosePeriod(
        catalogue_id="mini-dti", catalogue_version="1.0", period=2024, idempotency_key="close", closed_by="eva"
    )
    await workflow.close_period(command, UnitOfWork(sessions), registry, RegistryCache())
    assert (await audit.verify_log(UnitOfWork(sessions))).ok
    await audit.sign_checkpoint(UnitOfWork(sessions), load_or_create_signer(tmp_path / "key.pem"), "admin", "later")
    await bypass(sessions, "DELETE FROM closed_periods")
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.first_break is not None
    assert report.first_break["problem"] == "the closed periods or reopened units stored disagree with the log"
    assert report.first_break["sequence"] == 11  # the closing whose row went, not the head (12)


@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ("UPDATE catalogue_versions SET content_sha256 = :other", "catalogue_versions"),
        ("DELETE FROM peer_group_versions", "peer_group_versions"),
    ],
)
async def test_a_registered_version_row_edited_or_deleted_is_found(log, statement: str, table: str) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = log
    async with sessions() as session:
        registered = (await session.execute(text(f"SELECT min(sequence) FROM {table}"))).scalar_one()
    assert (await audit.verify_log(UnitOfWork(sessions))).ok
    await bypass(sessions, (statement, {"other": "f" * 64}))
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.first_break is not None and not report.ok
    assert report.first_break["sequence"] == registered
    assert "catalogue versions or unit lists" in report.first_break["problem"]


async def test_an_outbox_row_sent_to_another_subject_is_pinpointed(log) -> None:  # type: ignore[no-untyped-def]
    sessions, _ = log  # nothing relayed: every event waits in the outbox
    await bypass(sessions, "UPDATE outbox SET nats_subject = 'kpi.nowhere' WHERE sequence = 6")
    report = await audit.verify_log(UnitOfWork(sessions))
    assert report.first_break is not None and not report.ok
    assert (report.first_break["sequence"], report.first_break["found"]) == (6, "kpi.nowhere")
    assert "outbox row" in report.first_break["problem"]


async def test_an_upsert_or_truncate_does_not_get_past_the_guard(log) -> None:  # type: ignore[no-untyped-def]
    """The database's own ways round a row trigger, on each kind: an upsert (SQLite's `INSERT OR
    REPLACE` is `test_insert_or_replace_does_not_get_past_the_guard`) and, on PostgreSQL, TRUNCATE."""
    sessions, _ = log
    upsert = (
        "INSERT INTO events (sequence, event_id, type, subject, recorded_at, actor, envelope) "
        "VALUES (5, 'forged', 't', 's', '2024-01-01T00:00:00.000000Z', 'a', '{}') "
        "ON CONFLICT (sequence) DO UPDATE SET envelope = excluded.envelope"
    )
    async with sessions() as session:
        statements = [upsert] + (["TRUNCATE events CASCADE"] if session.get_bind().dialect.name != "sqlite" else [])
    for statement in statements:
        async with sessions() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(text(statement))
    assert (await audit.verify_log(UnitOfWork(sessions))).ok
