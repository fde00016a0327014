"""The launcher's registry of services: every entry points at what exists, as the service defines it."""

from __future__ import annotations

import importlib

from uvicorn.importer import import_from_string

from kpi_common.projection_service import ProjectionService
from kpi_launcher.registry import PROJECTIONS, SERVICES


def test_the_registry_holds_the_three_services_in_start_order() -> None:
    assert list(SERVICES) == ["ingest", "scoring", "reporting"]  # ingest owns the log; the projections follow it
    assert list(PROJECTIONS) == ["scoring", "reporting"]  # what `kpi-ledger rebuild` can replay


def test_each_entry_points_at_the_service_it_names() -> None:
    for name, service in SERVICES.items():
        assert service.name == name
        assert service.env_prefix == f"KPI_{name.upper()}_"
        assert (service.migrations_dir / "env.py").is_file()
        assert service.tables().tables
        factory = import_from_string(service.app)
        assert callable(factory) and factory.__module__.startswith(f"kpi_{name}.")
        for setting in service.files:
            assert setting in service.settings.model_fields
    assert sorted(service.default_port for service in SERVICES.values()) == [8001, 8002, 8003]


def test_each_service_names_its_own_tables_and_projection() -> None:
    for name, service in SERVICES.items():
        assert service.tables() is importlib.import_module(f"kpi_{name}.adapters.orm").metadata
    for name, service in PROJECTIONS.items():
        assert service.projection_service is not None
        built = service.projection_service(service.settings(database_url="sqlite+aiosqlite://", nats_url="nats://x"))
        assert isinstance(built, ProjectionService)
        assert built.tracking.consumer.startswith(name)
