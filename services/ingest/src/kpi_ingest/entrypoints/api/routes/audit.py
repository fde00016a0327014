"""Audit: verify the hash chain, sign checkpoints of its head."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from kpi_common.access import AdminKey, AuditorKey
from kpi_common.problems import Problem
from kpi_ingest.entrypoints.api.contracts import ChainReport, CheckpointSigned, replayed
from kpi_ingest.entrypoints.api.deps import IdempotencyKeyDep, IngestDep
from kpi_ingest.service_layer import audit

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("/verify", response_model=ChainReport)
async def verify(key: AuditorKey, ingest: IngestDep) -> dict[str, Any]:
    """Re-walk the event log's hash chain and compare it with the event stream; report the first break,
    every signed checkpoint, and what could not be proven (auditor key)."""
    trusted = frozenset(ingest.settings.trusted_checkpoint_keys)
    return (await audit.verify_with_stream(ingest.uow(), trusted, ingest.settings.nats_url)).as_dict()


@router.post(
    "/checkpoints",
    status_code=201,
    response_model=CheckpointSigned,
    responses={**replayed(CheckpointSigned), 503: {"description": "No checkpoint key is configured"}},
)
async def sign_checkpoint(
    key: AdminKey, ingest: IngestDep, idempotency_key: IdempotencyKeyDep, response: Response
) -> dict[str, Any]:
    """Sign the chain head with the operator's key and publish it as an event (admin key); a repeated
    request with the same Idempotency-Key answers 200 with the checkpoint it stored."""
    if ingest.signer is None:
        raise Problem(503, "No signing key", "no checkpoint key is configured")
    recorded = await audit.sign_checkpoint(ingest.uow(), ingest.signer, key.id, idempotency_key)
    if recorded.replayed:
        response.status_code = 200
    stored = recorded.event
    return {"event_id": stored.envelope.id, "event_sequence": stored.sequence, **stored.envelope.data}
