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
from typing import Any, Generic, TypeVar

from pydantic_settings import BaseSettings
from sqlalchemy import MetaData

import kpi_ingest
import kpi_reporting
import kpi_scoring
from kpi_common.projection_service import ProjectionService
from kpi_ingest.adapters.orm import metadata as ingest_metadata
from kpi_ingest.config import Settings as IngestSettings
from kpi_reporting.adapters.orm import metadata as reporting_metadata
from kpi_reporting.bootstrap import projection_service as reporting_projection
from kpi_reporting.config import Settings as ReportingSettings
from kpi_scoring.adapters.orm import metadata as scoring_metadata
from kpi_scoring.bootstrap import projection_service as scoring_projection
from kpi_scoring.config import Settings as ScoringSettings

S = TypeVar("S", bound=BaseSettings)


@dataclass(frozen=True)
class Service(Generic[S]):
    """What the launcher needs of one service."""

    name: str
    settings: type[S]  # its one Settings class (env prefix, default port)
    migrations_dir: Path  # its Alembic history
    metadata: MetaData  # its tables: what a rebuild empties
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
    metadata=ingest_metadata,
    app="kpi_ingest.entrypoints.api.app:create_app",
    files={"checkpoint_key_file": "checkpoint-key.pem"},
)
SCORING = Service(
    name="scoring",
    settings=ScoringSettings,
    migrations_dir=kpi_scoring.MIGRATIONS_DIR,
    metadata=scoring_metadata,
    app="kpi_scoring.entrypoints.api.app:create_app",
    projection_service=scoring_projection,
)
REPORTING = Service(
    name="reporting",
    settings=ReportingSettings,
    migrations_dir=kpi_reporting.MIGRATIONS_DIR,
    metadata=reporting_metadata,
    app="kpi_reporting.entrypoints.api.app:create_app",
    projection_service=reporting_projection,
)

SERVICES: Mapping[str, Service[Any]] = MappingProxyType({s.name: s for s in (INGEST, SCORING, REPORTING)})
PROJECTIONS: Mapping[str, Service[Any]] = MappingProxyType(
    {name: service for name, service in SERVICES.items() if service.projection_service is not None}
)
