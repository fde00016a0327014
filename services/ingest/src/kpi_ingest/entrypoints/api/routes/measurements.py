"""POST /v1/measurements."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from kpi_common.problems import Problem
from kpi_core.commands import RecordMeasurement
from kpi_ingest.entrypoints.api.deps import ApiKeyDep, IngestDep, require_role
from kpi_ingest.entrypoints.api.schemas import MeasurementAccepted, MeasurementIn
from kpi_ingest.service_layer import handlers

router = APIRouter(prefix="/v1", tags=["measurements"])


@router.post("/measurements", status_code=201, response_model=MeasurementAccepted)
async def post_measurement(
    body: MeasurementIn,
    response: Response,
    ingest: IngestDep,
    key: ApiKeyDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> MeasurementAccepted:
    """Record a unit's inputs for one indicator as an immutable event (idempotent per Idempotency-Key)."""
    if not idempotency_key:
        raise Problem(
            400,
            "Idempotency-Key required",
            "send an Idempotency-Key header",
            [{"field": "Idempotency-Key", "message": "required"}],
        )
    require_role(key, "reporter")
    if not key.may_report_for(body.unit_id):
        raise Problem(
            403,
            "Forbidden",
            f"key {key.id} may not report for unit {body.unit_id}",
            [{"field": "unit_id", "message": "not bound to this key"}],
        )
    command = RecordMeasurement(
        **body.model_dump(exclude={"evidence"}),
        evidence=tuple(body.evidence),
        idempotency_key=idempotency_key,
        submitted_by=key.id,
    )
    recorded = await handlers.record_measurement(command, ingest.uow(), ingest.catalogues)
    if recorded.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    else:
        ingest.relay.wake.set()
    envelope = recorded.event.envelope
    return MeasurementAccepted(
        event_id=envelope.id,
        sequence=envelope.sequence,
        recorded_at=envelope.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        subject=envelope.subject,
        replayed=recorded.replayed,
    )
