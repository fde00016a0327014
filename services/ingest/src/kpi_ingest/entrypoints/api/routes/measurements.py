"""POST /v1/measurements."""

from __future__ import annotations

from fastapi import APIRouter, Response

from kpi_common.access import ReporterKey
from kpi_core.commands import RecordMeasurement
from kpi_ingest.entrypoints.api.contracts import replayed
from kpi_ingest.entrypoints.api.deps import IdempotencyKeyDep, IngestDep, require_write_scope
from kpi_ingest.entrypoints.api.schemas import MeasurementAccepted, MeasurementIn
from kpi_ingest.service_layer import handlers

router = APIRouter(prefix="/v1", tags=["measurements"])


@router.post(
    "/measurements", status_code=201, response_model=MeasurementAccepted, responses=replayed(MeasurementAccepted)
)
async def post_measurement(
    key: ReporterKey,
    body: MeasurementIn,
    response: Response,
    ingest: IngestDep,
    idempotency_key: IdempotencyKeyDep,
) -> MeasurementAccepted:
    """Record a unit's inputs for one indicator as an immutable event (idempotent per Idempotency-Key)."""
    await require_write_scope(ingest, key, body, role_used="reporter")
    command = RecordMeasurement(
        **body.model_dump(exclude={"evidence"}),
        evidence=tuple(body.evidence),
        idempotency_key=idempotency_key,
        submitted_by=key.id,
    )
    recorded = await handlers.record_measurement(command, ingest.uow(), ingest.catalogues, ingest.units)
    if recorded.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    envelope = recorded.event.envelope
    return MeasurementAccepted(
        event_id=envelope.id,
        sequence=envelope.sequence,
        recorded_at=envelope.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        subject=envelope.subject,
        replayed=recorded.replayed,
    )
