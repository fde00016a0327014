"""The services the launcher knows, each named once here with what `kpi-ledger` needs of it.

Imported like any other code (no module looked up by name): a renamed settings class, factory or
migrations folder fails mypy and the import here, not a `kpi-ledger rebuild` at run time. The order
is the start order of the embedded system (ingest owns the log; the projections follow it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic_settings import BaseSettings

import kpi_ingest
import kpi_reporting
import kpi_scoring
from kpi_ingest.config import Settings as IngestSettings
from kpi_reporting.config import Settings as ReportingSettings
from kpi_scoring.config import Settings as ScoringSettings

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from kpi_common.projection_service import ProjectionService

S = TypeVar("S", bound=BaseSettings)

# A service's tables and projection are imported when a command asks for them, not with the registry:
# `kpi-ledger serve ingest` imports the registry, and the other services' code was a third of its start.


def _ingest_tables() -> MetaData:
    from kpi_ingest.adapters.orm import metadata

    return metadata


def _scoring_tables() -> MetaData:
    from kpi_scoring.adapters.orm import metadata

    return metadata


def _reporting_tables() -> MetaData:
    from kpi_reporting.adapters.orm import metadata

    return metadata


def _scoring_projection(settings: ScoringSettings) -> ProjectionService:
    from kpi_scoring.bootstrap import projection_service

    return projection_service(settings)


def _reporting_projection(settings: ReportingSettings) -> ProjectionService:
    from kpi_reporting.bootstrap import projection_service

    return projection_service(settings)


@dataclass(frozen=True)
class Service(Generic[S]):
    """What the launcher needs of one service."""

    name: str
    settings: type[S]  # its one Settings class (env prefix, default port)
    migrations_dir: Path  # its Alembic history
    tables: Callable[[], MetaData]  # its tables: what a rebuild empties
    app: str  # its ASGI app factory as uvicorn takes it, "module:function" (imported in the child only)
    projection_service: Callable[[S], ProjectionService] | None = None  # what `rebuild` replays; None: owns the log
    files: Mapping[str, str] = field(default_factory=dict)  # setting -> file `run` keeps under its var folder

    @property
    def env_prefix(self) -> str:
        return str(self.settings.model_config.get("env_prefix", ""))

    @property
    def default_port(self) -> int:
        return int(self.settings.model_fields["port"].default)


INGEST = Service(
    name="ingest",
    settings=IngestSettings,
    migrations_dir=kpi_ingest.MIGRATIONS_DIR,
    tables=_ingest_tables,
    app="kpi_ingest.entrypoints.api.app:create_app",
    files={"checkpoint_key_file": "checkpoint-key.pem"},
)
SCORING = Service(
    name="scoring",
    settings=ScoringSettings,
    migrations_dir=kpi_scoring.MIGRATIONS_DIR,
    tables=_scoring_tables,
    app="kpi_scoring.entrypoints.api.app:create_app",
    projection_service=_scoring_projection,
)
REPORTING = Service(
    name="reporting",
    settings=ReportingSettings,
    migrations_dir=kpi_reporting.MIGRATIONS_DIR,
    tables=_reporting_tables,
    app="kpi_reporting.entrypoints.api.app:create_app",
    projection_service=_reporting_projection,
)

SERVICES: Mapping[str, Service[Any]] = MappingProxyType({s.name: s for s in (INGEST, SCORING, REPORTING)})
PROJECTIONS: Mapping[str, Service[Any]] = MappingProxyType(
    {name: service for name, service in SERVICES.items() if service.projection_service is not None}
)
