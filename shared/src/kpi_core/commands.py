"""Commands: what a caller asks the system to do, already shaped by the entrypoint."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from kpi_core.events import Evidence, Stage


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RecordMeasurement(_Command):
    catalogue_id: str
    catalogue_version: str
    period: int
    unit_id: str
    indicator: str
    stage: Stage = "self_assessment"
    inputs: dict[str, Any] = {}
    not_applicable_reason: str | None = None
    evidence: tuple[Evidence, ...] = ()
    idempotency_key: str
    submitted_by: str


class RegisterCatalogueVersion(_Command):
    document: dict[str, Any]
    registered_by: str
