"""Integration fixtures: a migrated ingest database with the test catalogue registered."""

from __future__ import annotations

import pytest

from kpi_common.db import make_engine, session_factory
from kpi_common.migrations import upgrade
from kpi_core.commands import RegisterCatalogueVersion, RegisterPeerGroup
from kpi_ingest import MIGRATIONS_DIR as INGEST_MIGRATIONS
from kpi_ingest.adapters.catalogue_files import bundled_peer_group_documents
from kpi_ingest.service_layer import handlers
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_ingest.service_layer.units import register_peer_group
from tests.conftest import fixture_catalogue


@pytest.fixture
async def ingest_sessions(database_url: str):  # type: ignore[no-untyped-def]
    upgrade(INGEST_MIGRATIONS, database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    registry = CatalogueRegistry()
    provinces = next(units for units in bundled_peer_group_documents() if units["id"] == "provinces")
    await register_peer_group(RegisterPeerGroup(document=provinces, registered_by="admin"), UnitOfWork(sessions))
    command = RegisterCatalogueVersion(document=fixture_catalogue(), registered_by="admin")
    await handlers.register_catalogue_version(command, UnitOfWork(sessions), registry)
    yield sessions, registry
    await engine.dispose()
