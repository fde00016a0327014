"""Verifying the hash chain and signing checkpoints of its head.

The chain proves the log consistent with itself; two witnesses outside the database prove it is the
log that was written: signed checkpoints (a trusted key's signature over a head), and the stream on
NATS, which holds a copy of every event relayed. A forger who rewrites events and recomputes every
hash, or deletes the last events and winds the counter back, leaves a database that agrees with
itself but not with the stream.

An event the relay withheld (it could not be published at all) has a placeholder on the stream in
its place. That is accepted, with a warning, only when the placeholder names the stored event's hash
and ingest records the withholding (`withheld_events`) under that hash: a withheld event is not
tampering, but the stream holds no copy of it. Any other placeholder is a break.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kpi_common.messaging import connect
from kpi_common.signing import Signer, signature_is_valid
from kpi_common.stream_reading import StreamMissing, stream_messages
from kpi_common.subjects import event_subject
from kpi_core.assessment import SubmissionWindows, submission_windows
from kpi_core.audit import ChainVerifier, UnprovenRequests, checkpoint_statement
from kpi_core.events import (
    AuditCheckpointSigned,
    CatalogueVersionRegistered,
    EventEnvelope,
    EventWithheld,
    PeerGroupRegistered,
    PeriodClosed,
    UnitReopened,
    decode_event,
)
from kpi_core.set_proof import SetRecordRow, check_set_records
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
    stream: dict[str, Any] = field(default_factory=lambda: {"compared": False})
    warnings: list[str] = field(default_factory=list)
    copies: list[dict[str, Any]] | None = None  # sync copies compared (`kpi-ledger verify --copy`)

    @property
    def ok(self) -> bool:
        return self.first_break is None and all(checkpoint["valid"] for checkpoint in self.checkpoints)

    def as_dict(self) -> dict[str, Any]:
        shown = {
            "ok": self.ok,
            "events": self.events,
            "head_sequence": self.head_sequence,
            "head_sha256": self.head_sha256,
            "first_break": self.first_break,
            "checkpoints": self.checkpoints,
            "stream": self.stream,
            "warnings": self.warnings,
        }
        return shown | ({"copies": self.copies} if self.copies is not None else {})


async def verify_log(
    uow: UnitOfWork,
    trusted_public_keys: frozenset[str] = frozenset(),
    stream: AsyncIterable[list[bytes]] | None = None,
    stream_unavailable: str | None = None,
) -> VerifyReport:
    """Re-walk the whole log; report the first break (an edited event, a stored column that disagrees
    with it, a missing event, events missing after the last one, an event that differs from its copy
    on the stream or is missing while the stream holds it) and every signed checkpoint."""
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
            registrations = [
                *await uow.events.of_type(CatalogueVersionRegistered.type),
                *await uow.events.of_type(PeerGroupRegistered.type),
            ]
            stored_versions = await uow.events.registered_versions()
            waiting = await uow.events.outbox_rows()
            set_records = check_set_records(verifier.set_runs, await uow.sets.records())
        if (counted, counted_head) != (sequence, head):  # the last events deleted, the counter left as it was
            report.first_break = {
                "sequence": sequence + 1,
                "problem": "events missing after the last one stored: the sequence counter is ahead",
                "expected": f"{counted} {counted_head}",
                "found": f"{sequence} {head}",
            }
        else:
            report.first_break = derived_tables_break(changes, stored_windows, registrations, stored_versions, waiting)
        if report.first_break is None and set_records.first_break is not None:
            report.first_break = vars(set_records.first_break)
        if set_records.unproven:
            report.warnings.append(unproven_sets_warning(set_records.unproven))
    else:
        report.first_break = vars(verifier.first_break)
    if stream_unavailable is not None:
        report.stream = {"compared": False, "reason": stream_unavailable}
    elif stream is not None and report.first_break is None:
        try:
            report.first_break, report.stream = await compare_with_stream(uow, stream, sequence)
        except StreamMissing as missing:
            report.stream = {"compared": False, "reason": str(missing)}
    if report.stream.get("withheld"):
        report.warnings.append(withheld_warning(report.stream["withheld"]))
    if verifier.unproven_requests.count:
        report.warnings.append(unproven_requests_warning(verifier.unproven_requests))
    if not trusted_public_keys:
        report.warnings.append(
            "no trusted checkpoint key is configured (KPI_INGEST_TRUSTED_CHECKPOINT_KEYS): a checkpoint "
            "signed with any key passes, so a history rewritten and signed again would too"
        )
    if not report.stream["compared"]:
        report.warnings.append(
            "the log was not compared with the stream: a history rewritten with every hash recomputed, "
            "or cut short with the counter wound back, is found only by that comparison"
            + (f" ({report.stream['reason']})" if "reason" in report.stream else "")
        )
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


def derived_tables_break(
    changes: list[StoredEvent],
    stored_windows: SubmissionWindows,
    registrations: list[StoredEvent],
    stored_versions: dict[tuple[str, str, str], tuple[str, int]],
    waiting: list[tuple[int, str, EventEnvelope]],
) -> dict[str, Any] | None:
    """Ingest's tables derived from the log against what the log says they must hold, reported at
    the first sequence affected: the period state, the registered versions, the outbox's subjects."""
    logged = submission_windows((stored.sequence, _period_event(stored)) for stored in changes)
    if logged != stored_windows:  # e.g. a closed period's row deleted to take late submissions
        return {
            "sequence": _first_difference(logged, stored_windows),
            "problem": "the closed periods or reopened units stored disagree with the log",
            "expected": repr(logged),
            "found": repr(stored_windows),
        }
    logged_versions = registered_in_log(registrations)
    if logged_versions != stored_versions:  # e.g. a catalogue version's row pointed at other content
        differing = {*logged_versions.items()} ^ {*stored_versions.items()}
        return {
            "sequence": min(sequence for _, (_, sequence) in differing),
            "problem": "the registered catalogue versions or unit lists stored disagree with the log",
            "expected": repr(sorted(set(logged_versions.items()) - set(stored_versions.items()))),
            "found": repr(sorted(set(stored_versions.items()) - set(logged_versions.items()))),
        }
    for sequence, subject, envelope in waiting:  # e.g. a row sent to a subject no projection reads
        event = decode_event(envelope)
        if event is not None and subject != event_subject(event):
            return {
                "sequence": sequence,
                "problem": "the subject an outbox row will be published on disagrees with the hashed event",
                "expected": event_subject(event),
                "found": subject,
            }
    return None


async def compare_with_stream(
    uow: UnitOfWork, stream: AsyncIterable[list[bytes]], head_sequence: int, *, sync_copy: bool = False
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Each event copy on the stream against the stored event of its sequence (the walk has shown
    each stored hash true to its event); then every event must be on the stream or have waited in
    the outbox. The outbox and the head are read first, the stream after: an event relayed in
    between is in both snapshots, so only an event in neither is missing. Events appended while
    this runs are compared too; only an event the database does not hold at all is "cut".

    A sync copy (`sync_copy`, a `kpi-ledger sync` file read as pages of lines) is compared the same
    way, except that it may lag behind: only what it holds is held to the database."""
    where = "in the sync copy" if sync_copy else "on the stream"
    async with uow:
        waiting, head_before = set(await uow.events.outbox_sequences()), await uow.events.head()
    messages, last_on_stream, seen = 0, 0, set()
    withheld: list[int] = []  # sequences whose placeholder stands on the stream
    async for payloads in stream:
        copies = [(EventEnvelope.from_bytes(data), hashlib.sha256(data).hexdigest()) for data in payloads]
        messages += len(copies)
        low, high = min(copy.sequence for copy, _ in copies), max(copy.sequence for copy, _ in copies)
        last_on_stream = max(last_on_stream, high)
        async with uow:  # after the stream's page: a withholding is recorded before its placeholder is published
            stored = {row[0]: row[2] for row in await uow.events.chain_rows(low - 1, high - low + 1)}
            recorded = await uow.events.withheld_digests(low, high)
        for copy, digest in copies:
            sequence = copy.sequence
            seen.add(sequence)
            if sequence not in stored:
                problem = f"the {'sync copy' if sync_copy else 'stream'} holds events the database does not: the log "
                problem += "was cut after its last event"
                found = {"sequence": sequence, "problem": problem, "expected": f"{sequence}"}
                return {**found, "found": f"{head_sequence}"}, _compared(messages, last_on_stream, withheld)
            if copy.type == EventWithheld.type:
                broken = placeholder_break(copy, stored[sequence], recorded.get(sequence))
                if broken is not None:
                    return broken, _compared(messages, last_on_stream, withheld)
                withheld.append(sequence)
            elif sequence in recorded:  # e.g. a forged withholding, to list a published event as never sent
                problem = f"ingest records as withheld an event the {'sync copy' if sync_copy else 'stream'} holds"
                found = {"sequence": sequence, "problem": problem, "expected": "not recorded as withheld"}
                found["found"] = f"withheld {recorded[sequence]}"
                return found, _compared(messages, last_on_stream, withheld)
            elif stored[sequence] != digest:
                problem = f"the stored event differs from its copy {where}"
                found = {"sequence": sequence, "problem": problem, "expected": digest}
                return {**found, "found": str(stored[sequence])}, _compared(messages, last_on_stream, withheld)
    if sync_copy:
        return None, _compared(messages, last_on_stream, withheld)
    lost = next((s for s in range(1, min(head_sequence, head_before) + 1) if s not in seen and s not in waiting), None)
    if lost is not None:
        problem = "an event is neither on the stream nor waiting in the outbox: its outbox row was removed"
        return {
            "sequence": lost,
            "problem": problem,
            "expected": "on the stream or in the outbox",
            "found": "neither",
        }, (_compared(messages, last_on_stream, withheld))
    return None, _compared(messages, last_on_stream, withheld)


COPY_PAGE = 1_000  # lines of a sync copy compared at a time


async def compare_with_copies(uow: UnitOfWork, report: VerifyReport, copies: Sequence[Path]) -> None:
    """Each sync copy (a `kpi-ledger sync` file, held outside this system) as one more witness of the
    log: every event it holds against the stored event of its sequence, and none beyond the head.
    Compared only when the log holds together in itself (a break is reported already otherwise)."""
    report.copies = []
    for path in copies:
        if report.first_break is not None:
            report.copies.append({"path": str(path), "compared": False, "reason": "the log itself is broken"})
            continue
        try:
            broken, compared = await compare_with_stream(uow, copy_pages(path), report.head_sequence, sync_copy=True)
        except (OSError, ValueError) as unreadable:  # no such file, or a line that is no event
            reason = f"{type(unreadable).__name__}: {str(unreadable).splitlines()[0] if str(unreadable) else ''}"
            report.copies.append({"path": str(path), "compared": False, "reason": reason})
            report.warnings.append(f"the sync copy {path} was not compared ({reason})")
            continue
        report.copies.append({"path": str(path), **compared})
        if broken is not None:
            report.first_break = {**broken, "witness": str(path)}


async def copy_pages(path: Path) -> AsyncIterator[list[bytes]]:
    """A sync copy's events, a page of lines at a time; a last line cut short by a crash is no event yet."""
    with path.open("rb") as handle:
        page: list[bytes] = []
        for line in handle:
            if not line.endswith(b"\n"):
                break
            page.append(line[:-1])
            if len(page) == COPY_PAGE:
                yield page
                page = []
        if page:
            yield page


def placeholder_break(
    placeholder: EventEnvelope, stored_sha256: str | None, recorded_sha256: str | None
) -> dict[str, Any] | None:
    """A placeholder on the stream stands for the stored event of its sequence only if it names that
    event's hash and ingest recorded the withholding under the same hash."""
    try:
        named = EventWithheld.model_validate(placeholder.data)
    except ValueError:
        named = None
    sequence = placeholder.sequence
    if named is None or named.sequence != sequence or named.event_sha256 != stored_sha256:
        problem = "a placeholder on the stream stands for another event than the one stored at its sequence"
        found = named.event_sha256 if named is not None and named.sequence == sequence else "no valid placeholder"
        return {"sequence": sequence, "problem": problem, "expected": str(stored_sha256), "found": found}
    if recorded_sha256 != stored_sha256:
        problem = "a placeholder on the stream stands for an event ingest does not record as withheld"
        return {
            "sequence": sequence,
            "problem": problem,
            "expected": f"withheld {stored_sha256}",
            "found": f"withheld {recorded_sha256}" if recorded_sha256 else "not recorded as withheld",
        }
    return None


def withheld_warning(sequences: list[int]) -> str:
    shown = ", ".join(str(sequence) for sequence in sequences[:20]) + (", ..." if len(sequences) > 20 else "")
    return (
        f"{len(sequences)} events were withheld from the stream (sequences {shown}): each is stored, the "
        "placeholder in its place on the stream names its hash and ingest records it as withheld, but the "
        "stream holds no copy of it to witness it (see GET /v1/admin/withheld)"
    )


async def verify_with_stream(uow: UnitOfWork, trusted_public_keys: frozenset[str], nats_url: str) -> VerifyReport:
    """`verify_log` with the stream on NATS as a witness; when NATS does not answer, the report says so."""
    try:
        client = await connect(nats_url, "kpi-ingest-verify", keep_trying=False)
    except Exception as error:
        unavailable = f"NATS at {nats_url} does not answer: {type(error).__name__}"
        return await verify_log(uow, trusted_public_keys, stream_unavailable=unavailable)
    try:
        return await verify_log(uow, trusted_public_keys, stream_messages(client))
    finally:
        await client.close()


def _compared(messages: int, last_sequence: int, withheld: list[int]) -> dict[str, Any]:
    compared = {"compared": True, "messages": messages, "last_sequence": last_sequence}
    return {**compared, "withheld": withheld} if withheld else compared


def registered_in_log(registrations: list[StoredEvent]) -> dict[tuple[str, str, str], tuple[str, int]]:
    """What the registration events say the version tables must hold (kind, id, version) -> (hash, sequence)."""
    found: dict[tuple[str, str, str], tuple[str, int]] = {}
    for stored in registrations:
        event = decode_event(stored.envelope)
        if isinstance(event, CatalogueVersionRegistered):
            found[("catalogue", event.catalogue_id, event.version)] = (event.content_sha256, stored.sequence)
        elif isinstance(event, PeerGroupRegistered):
            found[("units", event.peer_group_id, event.version)] = (event.content_sha256, stored.sequence)
    return found


def unproven_requests_warning(unproven: UnprovenRequests) -> str:
    return (
        f"{unproven.count} events (sequences {unproven.first} to {unproven.last}) were stored before envelopes "
        "recorded their request: their Idempotency-Key and request hash are kept only beside the hashed bytes, "
        "so an edit of those columns (a retry stored again, or answered with another event) cannot be proven "
        "from the log"
    )


def unproven_sets_warning(unproven: list[SetRecordRow]) -> str:
    first, last = unproven[0].first_sequence, unproven[-1].last_sequence
    return (
        f"{len(unproven)} measurement or verification set records (at sequences {first} to {last}) were "
        "stored before a set's events carried the hashes of its record: what a repeated set is answered "
        "with cannot be proven from the log for them"
    )


def _first_difference(logged: SubmissionWindows, stored: SubmissionWindows) -> int:
    """The first sequence the period state disagrees at: the earliest closing or reopening that one side
    holds and the other does not (or holds at another sequence)."""
    closings = {*logged.closed.items()} ^ {*stored.closed.items()}
    reopenings = {*logged.reopened.items()} ^ {*stored.reopened.items()}
    return min([sequence for _, sequence in closings] + [sequence for _, sequence in reopenings])


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
