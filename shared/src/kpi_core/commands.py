"""Commands: what a caller asks the system to do, already shaped by the entrypoint."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kpi_core.events import Evidence, Role, Stage


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
    responds_to: str | None = None
    idempotency_key: str
    submitted_by: str


class RegisterCatalogueVersion(_Command):
    document: dict[str, Any]
    registered_by: str


class VerifyMeasurement(_Command):
    """An evaluator accepts a unit's self-assessed value for one component, or replaces it with a reason."""

    catalogue_id: str
    catalogue_version: str
    period: int
    unit_id: str
    indicator: str
    decision: Literal["accepted", "adjusted"]
    inputs: dict[str, Any] = {}
    not_applicable_reason: str | None = None
    reason: str | None = None
    evidence: tuple[Evidence, ...] = ()
    supersedes: str | None = None
    idempotency_key: str
    submitted_by: str


class RequestEvidence(_Command):
    catalogue_id: str
    catalogue_version: str
    period: int
    unit_id: str
    indicator: str
    message: str
    idempotency_key: str
    requested_by: str


class ClosePeriod(_Command):
    catalogue_id: str
    catalogue_version: str
    period: int
    reason: str | None = None
    idempotency_key: str
    closed_by: str


class ReopenUnit(_Command):
    catalogue_id: str
    catalogue_version: str
    period: int
    unit_id: str
    reason: str
    idempotency_key: str
    reopened_by: str


class ReportContext(_Command):
    catalogue_id: str
    catalogue_version: str
    period: int
    unit_id: str
    values: dict[str, Any]
    idempotency_key: str
    submitted_by: str


class PublishResult(_Command):
    catalogue_id: str
    catalogue_version: str
    period: int
    stage: Literal["verification"] = "verification"  # the official result is the verified one (003 §II.2.b)
    replaces: str | None = None
    reason: str | None = None
    incomplete_reason: str | None = None
    idempotency_key: str
    published_by: str


class RegisterPeerGroup(_Command):
    document: dict[str, Any]
    registered_by: str


class GrantKey(_Command):
    key_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100)
    roles: tuple[Role, ...] = Field(min_length=1)
    units: tuple[str, ...] = ()
    peer_groups: tuple[str, ...] = ("*",)
    expires_at: datetime | None = None
    granted_by: str


class RotateKey(_Command):
    key_id: str
    rotated_by: str


class RevokeKey(_Command):
    key_id: str
    reason: str = Field(min_length=3, max_length=2000)
    revoked_by: str
