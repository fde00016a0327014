"""Only Alembic changes a schema: each service's migrations build exactly the tables its code declares."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from kpi_common.db import make_engine
from kpi_common.migrations import upgrade


@pytest.mark.parametrize("service", ["ingest", "scoring", "reporting"])
async def test_the_migrations_match_the_declared_tables(service: str, database_url: str) -> None:
    package = importlib.import_module(f"kpi_{service}")
    metadata = importlib.import_module(f"kpi_{service}.adapters.orm").metadata
    upgrade(package.MIGRATIONS_DIR, database_url)
    engine = make_engine(database_url)

    def differences(connection: sa.Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    async with engine.connect() as connection:
        found = await connection.run_sync(differences)
    await engine.dispose()
    assert found == []


async def test_first_reports_are_filled_from_the_lines_already_projected(database_url: str) -> None:
    """A reporting database projected before `first_reports` existed: the migration finds each
    unit's first line from a measurement of its own, at the lowest sequence and the earliest time,
    several lines of one event included, and none for a unit whose lines come from no measurement."""
    from kpi_reporting import MIGRATIONS_DIR

    upgrade(MIGRATIONS_DIR, database_url, "2026_12_02_0007")
    scope = {"catalogue_id": "c", "version": "1", "period": 2024, "stage": "self_assessment"}
    lines = [  # (unit, code, sequence, recorded_at, event_id)
        ("u1", "1.1", 5, "2024-01-01T00:00:05Z", "e5"),
        ("u1", "1", 5, "2024-01-01T00:00:05Z", "e5"),
        ("u1", "1.1", 9, "2024-01-01T00:00:09Z", "e9"),
        ("u1", "1.2", 3, "2024-01-01T00:00:03Z", None),
        ("u2", "1.1", 7, "2024-01-01T00:00:07Z", None),
    ]
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO score_lines (catalogue_id, version, period, stage, unit_id, code, sequence, "
                    "recorded_at, status, points, max_points, event_id, detail) VALUES (:catalogue_id, :version, "
                    ":period, :stage, :unit, :code, :sequence, :recorded_at, 'scored', '1', '1', :event_id, '{}')"
                ),
                [
                    {**scope, "unit": unit, "code": code, "sequence": sequence, "recorded_at": at, "event_id": event}
                    for unit, code, sequence, at, event in lines
                ],
            )
        upgrade(MIGRATIONS_DIR, database_url)
        async with engine.connect() as connection:
            query = sa.text("SELECT unit_id, sequence, recorded_at FROM first_reports")
            found = (await connection.execute(query)).all()
    finally:
        await engine.dispose()
    assert [tuple(row) for row in found] == [("u1", 5, "2024-01-01T00:00:05Z")]
