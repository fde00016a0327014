"""A live edit of the log (issue 16), with ingest on SQLite and on PostgreSQL: with the system running,
an event's row is edited in ingest's database. Ingest refuses to serve it (503 naming the sequence, not
the altered event) and stops being ready; on the old main it stayed ready and served the altered event."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from kpi_launcher.registry import SERVICES
from tests.conftest import postgres_database
from tests.e2e.conftest import RunningSystem, start_running_system

pytestmark = pytest.mark.e2e
EDIT = "UPDATE events SET envelope = replace(envelope, '\"a\":true', '\"a\":false') WHERE sequence = "


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def running_alone(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningSystem]:
    urls = {name: f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}" for name in SERVICES}
    if request.param == "postgresql":
        urls["ingest"] = postgres_database(request.getfixturevalue("postgres_base_url"))
    running = start_running_system(tmp_path, urls)
    yield running
    running.system.stop()


def edit_directly(database_url: str, sequence: int) -> None:
    """What an operator with database access could do while ingest runs: lift the guard, edit the row."""
    if database_url.startswith("sqlite"):
        connection = sqlite3.connect(database_url.split("///", 1)[1])
        with connection:
            connection.execute("DROP TRIGGER IF EXISTS events_append_only_update")
            connection.execute(EDIT + str(sequence))
        connection.close()
        return

    async def edit() -> None:
        import asyncpg

        connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            await connection.execute("ALTER TABLE events DISABLE TRIGGER events_append_only_row")
            await connection.execute(EDIT + str(sequence))
        finally:
            await connection.close()

    asyncio.run(edit())


def test_an_event_edited_while_the_system_runs_is_not_served_and_ingest_is_not_ready(
    running_alone: RunningSystem,
) -> None:
    running = running_alone
    body = {
        "catalogue_id": "vn-dti-province",
        "catalogue_version": "1.0",
        "period": 2024,
        "unit_id": "gia-lai",
        "indicator": "1.6",
        "inputs": {"a": True},
    }
    stored = running.post("gia-lai", "/v1/measurements", body, "live-tamper")
    assert stored.status_code == 201, stored.text
    sequence = stored.json()["sequence"]
    auditor = {"Authorization": f"Bearer {running.keys['auditor']}"}
    assert running.ingest.get(f"/v1/events/{sequence}", headers=auditor).status_code == 200
    assert running.ingest.get("/readyz").status_code == 200

    edit_directly(running.database_urls["ingest"], sequence)

    one = running.ingest.get(f"/v1/events/{sequence}", headers=auditor)
    assert one.status_code == 503 and one.headers["content-type"].startswith("application/problem+json")
    assert f"stored event {sequence} does not match its hash" in one.json()["detail"]
    page = running.ingest.get("/v1/events", params={"after": 0, "limit": 1000}, headers=auditor)
    assert page.status_code == 503 and '"a":false' not in page.text
    ready = running.ingest.get("/readyz")
    assert ready.status_code == 503 and "does not match its hash" in ready.json()["checks"]["log integrity"]
