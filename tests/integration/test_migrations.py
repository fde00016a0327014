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
