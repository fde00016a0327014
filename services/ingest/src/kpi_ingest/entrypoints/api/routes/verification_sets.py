"""POST /v1/verification-sets: an evaluator accepts a unit's whole self-assessment except the listed adjustments."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from kpi_common.access import EvaluatorKey
from kpi_core.commands import VerifyMeasurement
from kpi_core.events import Evidence
from kpi_core.verification_sets import VerifyUnit
from kpi_ingest.entrypoints.api.contracts import RefusedRow
from kpi_ingest.entrypoints.api.deps import IdempotencyKeyDep, IngestDep, require_write_scope
from kpi_ingest.entrypoints.api.schemas import InputValue
from kpi_ingest.service_layer.verification_sets import verify_unit

router = APIRouter(prefix="/v1", tags=["assessment workflow"])


class AdjustmentIn(BaseModel):
    """One component the evaluator replaces, with its reason ("Kết quả đánh giá")."""

    model_config = ConfigDict(extra="forbid")

    indicator: str = Field(min_length=1, max_length=50)
    inputs: dict[str, InputValue] = Field(default_factory=dict)
    not_applicable_reason: str | None = Field(default=None, min_length=3, max_length=2000)
    reason: str = Field(min_length=3, max_length=2000)
    evidence: list[Evidence] = Field(default_factory=list, max_length=50)
    supersedes: str | None = Field(default=None, max_length=36, description="The earlier adjustment it replaces")


class VerificationSetIn(BaseModel):
    """Accept every self-assessed component of a unit, except `adjustments`."""

    model_config = ConfigDict(extra="forbid")

    catalogue_id: str = Field(min_length=1, max_length=100)
    catalogue_version: str = Field(min_length=1, max_length=50)
    period: int = Field(ge=2000, le=2100)
    unit_id: str = Field(min_length=1, max_length=100)
    evidence: list[Evidence] = Field(default_factory=list, max_length=50, description="Of the acceptances")
    adjustments: list[AdjustmentIn] = Field(default_factory=list, max_length=1000)


class VerificationSetSummary(BaseModel):
    """What a verification set recorded (or, in a dry run, would record)."""

    set_id: str | None
    catalogue_id: str
    catalogue_version: str
    period: int
    unit_id: str
    dry_run: bool
    stored: bool
    replayed: bool = False
    accepted: int = Field(description="Components accepted as self-assessed")
    adjusted: int
    unchanged: int = Field(description="Components already accepted as they stand: nothing stored")
    refused: int
    errors: list[RefusedRow] = Field(description="An adjustment by its position (from 1); an acceptance as row 0")
    errors_total: int
    first_sequence: int | None = None
    last_sequence: int | None = None


@router.post(
    "/verification-sets",
    status_code=201,
    response_model=VerificationSetSummary,
    responses={200: {"model": VerificationSetSummary, "description": "Nothing stored: a dry run, or a replay"}},
)
async def post_verification_set(
    key: EvaluatorKey,
    body: VerificationSetIn,
    response: Response,
    ingest: IngestDep,
    idempotency_key: IdempotencyKeyDep,
    dry_run: Annotated[bool, Query(alias="dryRun", description="Decide and report; store nothing")] = False,
) -> VerificationSetSummary:
    """Accept a unit's whole self-assessment except the listed adjustments (each with its reason)."""
    await require_write_scope(ingest, key, body, role_used="evaluator")
    scope = body.model_dump(include={"catalogue_id", "catalogue_version", "period", "unit_id"})
    acceptance = VerifyMeasurement(
        **scope,
        indicator="*",
        decision="accepted",
        evidence=tuple(body.evidence),
        idempotency_key=idempotency_key,
        submitted_by=key.id,
    )
    adjustments = tuple(
        VerifyMeasurement(
            **scope,
            **adjustment.model_dump(exclude={"evidence"}),
            evidence=tuple(adjustment.evidence),
            decision="adjusted",
            idempotency_key=idempotency_key,
            submitted_by=key.id,
        )
        for adjustment in body.adjustments
    )
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, default=str)
    command = VerifyUnit(acceptance, adjustments, hashlib.sha256(canonical.encode("utf-8")).hexdigest(), dry_run)
    done = await verify_unit(command, ingest.uow(), ingest.catalogues, ingest.units)
    if done.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    if not done.stored or done.replayed:
        response.status_code = 200
    summary: dict[str, Any] = {**done.summary, "replayed": done.replayed}
    return VerificationSetSummary.model_validate(summary)
