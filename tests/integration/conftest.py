"""Integration fixtures: a migrated ingest database with the test catalogue registered."""

from __future__ import annotations

import pytest

from kpi_common.db import make_engine, session_factory
from kpi_common.migrations import upgrade
from kpi_core.commands import RegisterCatalogueVersion
from kpi_ingest import MIGRATIONS_DIR as INGEST_MIGRATIONS
from kpi_ingest.service_layer import handlers
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from tests.conftest import fixture_catalogue


@pytest.fixture
async def ingest_sessions(database_url: str):  # type: ignore[no-untyped-def]
    upgrade(INGEST_MIGRATIONS, database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    registry = CatalogueRegistry()
    command = RegisterCatalogueVersion(document=fixture_catalogue(), registered_by="admin")
    await handlers.register_catalogue_version(command, UnitOfWork(sessions), registry)
    yield sessions, registry
    await engine.dispose()
