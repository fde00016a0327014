"""Verifying the hash chain and signing checkpoints of its head."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from kpi_common.signing import Signer, signature_is_valid
from kpi_core.assessment import submission_windows
from kpi_core.audit import ChainVerifier, checkpoint_statement
from kpi_core.events import AuditCheckpointSigned, PeriodClosed, UnitReopened, decode_event
from kpi_ingest.adapters.event_store import StoredEvent
from kpi_ingest.service_layer.handlers import Recorded, Submission, append_once
from kpi_ingest.service_layer.unit_of_work import UnitOfWork

PAGE = 2000


@dataclass
class VerifyReport:
    events: int
    head_sequence: int
    head_sha256: str
    first_break: dict[str, Any] | None = None
    checkpoints: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.first_break is None and all(checkpoint["valid"] for checkpoint in self.checkpoints)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head_sequence": self.head_sequence,
            "head_sha256": self.head_sha256,
            "first_break": self.first_break,
            "checkpoints": self.checkpoints,
        }


async def verify_log(uow: UnitOfWork, trusted_public_keys: frozenset[str] = frozenset()) -> VerifyReport:
    """Re-walk the whole log; report the first break (an edited event, a stored column that disagrees
    with it, a missing event, events missing after the last one) and every signed checkpoint."""
    verifier = ChainVerifier()
    after, count = 0, 0
    while verifier.first_break is None:
        async with uow:
            rows = await uow.events.chain_rows(after, PAGE)
        if not rows:
            break
        for row in rows:
            verifier.feed(*row)
        count += len(rows)
        after = rows[-1][0]
    sequence, head = verifier.head_at()
    report = VerifyReport(count, sequence, head)
    if verifier.first_break is None:
        async with uow:
            counted, counted_head = await uow.events.chain_head()
            # the walk found every column true, so the type column can be trusted to find these
            changes = [*await uow.events.of_type(PeriodClosed.type), *await uow.events.of_type(UnitReopened.type)]
            stored_windows = await uow.workflow.windows()
        if (counted, counted_head) != (sequence, head):  # the last events deleted, the counter left as it was
            report.first_break = {
                "sequence": sequence + 1,
                "problem": "events missing after the last one stored: the sequence counter is ahead",
                "expected": f"{counted} {counted_head}",
                "found": f"{sequence} {head}",
            }
        else:
            logged = submission_windows((stored.sequence, _period_event(stored)) for stored in changes)
            if logged != stored_windows:  # e.g. a closed period's row deleted to take late submissions
                report.first_break = {
                    "sequence": sequence,
                    "problem": "the closed periods or reopened units stored disagree with the log",
                    "expected": repr(logged),
                    "found": repr(stored_windows),
                }
    else:
        report.first_break = vars(verifier.first_break)
    for own_sequence, checkpoint in verifier.checkpoints:
        signed = signature_is_valid(
            checkpoint.public_key,
            checkpoint.signature,
            checkpoint_statement(checkpoint.sequence, checkpoint.chain_sha256),
        )
        matches = verifier.heads.get(checkpoint.sequence) == checkpoint.chain_sha256
        trusted = not trusted_public_keys or checkpoint.public_key in trusted_public_keys
        report.checkpoints.append(
            {
                "sequence": checkpoint.sequence,
                "event_sequence": own_sequence,
                "signature_valid": signed,
                "matches_chain": matches,
                "trusted_key": trusted,
                "valid": signed and matches and trusted,
            }
        )
    return report


def _period_event(stored: StoredEvent) -> PeriodClosed | UnitReopened:
    event = decode_event(stored.envelope)
    assert isinstance(event, PeriodClosed | UnitReopened)
    return event


async def sign_checkpoint(uow: UnitOfWork, signer: Signer, actor: str, idempotency_key: str) -> Recorded:
    """Append a checkpoint that signs the chain head as it stands just before it; a repeated request
    (same Idempotency-Key) answers the checkpoint it stored."""

    async def decide(uow: UnitOfWork) -> AuditCheckpointSigned:
        sequence, head = await uow.events.chain_head()
        return AuditCheckpointSigned(
            sequence=sequence,
            chain_sha256=head,
            public_key=signer.public_key_hex,
            signature=signer.sign(checkpoint_statement(sequence, head)),
            signed_by=actor,
        )

    submission = Submission(actor, idempotency_key, hashlib.sha256(b"sign the chain head").hexdigest())
    return await append_once(uow, submission, decide)
