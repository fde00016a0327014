"""The assessment cycle over HTTP: verify, request evidence, close and reopen, general information, publish."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from kpi_common.access import ApproverKey, EvaluatorKey, EvaluatorOrAdminKey, ReporterKey
from kpi_core.commands import ClosePeriod, PublishResult, ReopenUnit, ReportContext, RequestEvidence, VerifyMeasurement
from kpi_core.events import Evidence
from kpi_ingest.entrypoints.api.contracts import Accepted, PublicationAccepted, replayed
from kpi_ingest.entrypoints.api.deps import IdempotencyKeyDep, IngestDep, require_write_scope
from kpi_ingest.entrypoints.api.schemas import InputValue
from kpi_ingest.service_layer import workflow
from kpi_ingest.service_layer.handlers import Recorded

router = APIRouter(prefix="/v1", tags=["assessment workflow"])


class _Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    catalogue_id: str = Field(min_length=1, max_length=100)
    catalogue_version: str = Field(min_length=1, max_length=50)
    period: int = Field(ge=2000, le=2100)


class VerificationIn(_Scope):
    unit_id: str = Field(min_length=1, max_length=100)
    indicator: str = Field(min_length=1, max_length=50)
    decision: Annotated[str, Field(pattern="^(accepted|adjusted)$")]
    inputs: dict[str, InputValue] = Field(default_factory=dict)
    not_applicable_reason: str | None = Field(default=None, min_length=3, max_length=2000)
    reason: str | None = Field(default=None, min_length=3, max_length=2000)
    evidence: list[Evidence] = Field(default_factory=list, max_length=50)
    supersedes: str | None = Field(
        default=None, max_length=36, description="The earlier adjustment (event id) this verification replaces"
    )


class EvidenceRequestIn(_Scope):
    unit_id: str = Field(min_length=1, max_length=100)
    indicator: str = Field(min_length=1, max_length=50)
    message: str = Field(min_length=3, max_length=2000)


class CloseIn(_Scope):
    reason: str | None = Field(default=None, max_length=2000)


class ReopenIn(_Scope):
    unit_id: str = Field(min_length=1, max_length=100)
    reason: str = Field(min_length=3, max_length=2000)


class ContextIn(_Scope):
    unit_id: str = Field(min_length=1, max_length=100)
    values: dict[str, InputValue] = Field(min_length=1)


class PublicationIn(_Scope):
    stage: Literal["verification"] = Field(
        default="verification", description="The official result is the verified one (003 §II.2.b)"
    )
    replaces: str | None = None
    reason: str | None = Field(default=None, min_length=3, max_length=2000)
    incomplete_reason: str | None = Field(
        default=None,
        min_length=10,
        max_length=2000,
        description="Why the ranking is published although some components have no verification decision",
    )


def _accepted(recorded: Recorded, response: Response, **extra: Any) -> dict[str, Any]:
    stored = recorded.event
    if recorded.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return {
        "event_id": stored.envelope.id,
        "sequence": stored.sequence,
        "type": stored.envelope.type,
        "replayed": recorded.replayed,
        **extra,
    }


@router.post("/verifications", status_code=201, response_model=Accepted, responses=replayed(Accepted))
async def post_verification(
    key: EvaluatorKey,
    body: VerificationIn,
    response: Response,
    ingest: IngestDep,
    idempotency_key: IdempotencyKeyDep,
) -> dict[str, Any]:
    """Evaluator: accept a unit's self-assessed value for a component, or replace it with a reason."""
    await require_write_scope(ingest, key, body, role_used="evaluator")
    command = VerifyMeasurement(
        **body.model_dump(exclude={"evidence"}),
        evidence=tuple(body.evidence),
        idempotency_key=idempotency_key,
        submitted_by=key.id,
    )
    recorded = await workflow.verify_measurement(command, ingest.uow(), ingest.catalogues, ingest.units)
    return _accepted(recorded, response)


@router.post("/evidence-requests", status_code=201, response_model=Accepted, responses=replayed(Accepted))
async def post_evidence_request(
    key: EvaluatorKey,
    body: EvidenceRequestIn,
    response: Response,
    ingest: IngestDep,
    idempotency_key: IdempotencyKeyDep,
) -> dict[str, Any]:
    """Evaluator: ask a unit for more evidence on a component; the unit answers with `responds_to` = this event id."""
    await require_write_scope(ingest, key, body, role_used="evaluator")
    command = RequestEvidence(**body.model_dump(), idempotency_key=idempotency_key, requested_by=key.id)
    return _accepted(await workflow.request_evidence(command, ingest.uow(), ingest.catalogues, ingest.units), response)


@router.post("/periods/close", status_code=201, response_model=Accepted, responses=replayed(Accepted))
async def post_close(
    key: EvaluatorOrAdminKey,
    body: CloseIn,
    response: Response,
    ingest: IngestDep,
    idempotency_key: IdempotencyKeyDep,
) -> dict[str, Any]:
    """Evaluator or admin: close a catalogue version's period for submissions."""
    if not key.has_role("admin"):
        await require_write_scope(ingest, key, body, role_used="evaluator")
    command = ClosePeriod(**body.model_dump(), idempotency_key=idempotency_key, closed_by=key.id)
    return _accepted(await workflow.close_period(command, ingest.uow(), ingest.catalogues, ingest.units), response)


@router.post("/periods/reopen", status_code=201, response_model=Accepted, responses=replayed(Accepted))
async def post_reopen(
    key: EvaluatorKey,
    body: ReopenIn,
    response: Response,
    ingest: IngestDep,
    idempotency_key: IdempotencyKeyDep,
) -> dict[str, Any]:
    """Evaluator: reopen a closed period for one unit, with a reason."""
    await require_write_scope(ingest, key, body, role_used="evaluator")
    command = ReopenUnit(**body.model_dump(), idempotency_key=idempotency_key, reopened_by=key.id)
    return _accepted(await workflow.reopen_unit(command, ingest.uow(), ingest.catalogues, ingest.units), response)


@router.post("/context", status_code=201, response_model=Accepted, responses=replayed(Accepted))
async def post_context(
    key: ReporterKey,
    body: ContextIn,
    response: Response,
    ingest: IngestDep,
    idempotency_key: IdempotencyKeyDep,
) -> dict[str, Any]:
    """Reporter: a unit's general information for a period (population, civil servants, information systems...)."""
    await require_write_scope(ingest, key, body, role_used="reporter")
    command = ReportContext(**body.model_dump(), idempotency_key=idempotency_key, submitted_by=key.id)
    return _accepted(await workflow.report_context(command, ingest.uow(), ingest.catalogues, ingest.units), response)


@router.post(
    "/publications",
    status_code=201,
    response_model=PublicationAccepted,
    responses={**replayed(PublicationAccepted), 404: {"description": "`replaces` names no publication of the period"}},
)
async def post_publication(
    key: ApproverKey,
    body: PublicationIn,
    response: Response,
    ingest: IngestDep,
    idempotency_key: IdempotencyKeyDep,
) -> dict[str, Any]:
    """Approver: publish (freeze) the ranking of a period at this moment's cut of the log; scoring freezes it and
    reporting serves it. To correct it, publish a restatement naming `replaces`."""
    await require_write_scope(ingest, key, body, role_used="approver")
    command = PublishResult(**body.model_dump(), idempotency_key=idempotency_key, published_by=key.id)
    recorded = await workflow.publish_result(
        command,
        ingest.uow(),
        ingest.catalogues,
        ingest.units,
        self_approval_allowed=ingest.settings.allow_self_approval,
    )
    return _accepted(recorded, response, publication=recorded.event.envelope.data)
