"""Tamper evidence: every event's hash and a chain over the global sequence.

`event_sha256` is the SHA-256 of the event's canonical bytes (its CloudEvents envelope as stored);
`chain_sha256` is the SHA-256 of the predecessor's chain hash followed by this event's hash.
Changing, removing or reordering anything stored breaks the chain at that event. The columns the
log keeps beside each envelope (its id, type, subject, time, unit, catalogue, actor) are checked
against the hashed envelope too, so an edit of what `/v1/events?unit=` filters on is caught; and so
are its Idempotency-Key and request hash, which decide what a retried request is answered: an event
a request stored carries their SHA-256s as envelope extensions (`idempotencykeysha256`,
`requestsha256`). Events stored before those extensions existed keep them only beside the hashed
bytes: the verifier counts them (`UnprovenRequests`) so a report can say what it could not prove.
The events of a set carry the same hashes for the set's record instead (`kpi_core.set_proof`): the
verifier collects them, and the record is held to them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from kpi_core.events import (
    REQUEST_ATTRIBUTES,
    AuditCheckpointSigned,
    EventEnvelope,
    decode_event,
    idempotency_key_sha256,
    index_of,
)
from kpi_core.set_proof import SetRun, add_to_runs

GENESIS_SHA256 = "0" * 64


def event_sha256(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


def chain_sha256(previous_chain: str, this_event: str) -> str:
    return hashlib.sha256(f"{previous_chain}{this_event}".encode("ascii")).hexdigest()


def checkpoint_statement(sequence: int, head_sha256: str) -> bytes:
    """What a signed checkpoint signs: the chain head at a sequence."""
    return f"kpi-ledger checkpoint v1\nsequence={sequence}\nchain_sha256={head_sha256}\n".encode("ascii")


@dataclass(frozen=True)
class ChainBreak:
    sequence: int
    problem: str
    expected: str
    found: str


def expected_columns(envelope: EventEnvelope) -> dict[str, str | None]:
    """The stored columns an envelope implies."""
    event = decode_event(envelope)
    index = index_of(event) if event is not None else None
    return {
        "event_id": envelope.id,
        "type": envelope.type,
        "subject": envelope.subject,
        "recorded_at": envelope.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "catalogue_id": index.catalogue_id if index else envelope.data.get("catalogue_id"),
        "unit_id": index.unit_id if index else envelope.data.get("unit_id"),
        "actor": (index.actor or "") if index else None,
    }


def request_columns_problem(envelope: EventEnvelope, columns: Mapping[str, str | None]) -> tuple[str, str, str] | None:
    """The first of the request columns (Idempotency-Key, request hash) that disagrees with the
    envelope's extensions, as (column, expected, found); both compared as SHA-256s. The events of a
    set keep no key or request hash of their own: those are the set record's."""
    key = columns.get("idempotency_key")
    found = {
        "idempotency_key": idempotency_key_sha256(key) if key is not None else None,
        "request_sha256": columns.get("request_sha256"),
    }
    in_set = envelope.setsummarysha256 is not None
    expected = {
        "idempotency_key": None if in_set else envelope.idempotencykeysha256,
        "request_sha256": None if in_set else envelope.requestsha256,
    }
    for name in ("idempotency_key", "request_sha256"):
        if name in columns and found[name] != expected[name]:
            return name, str(expected[name]), str(found[name])
    return None


def carries_request(envelope: EventEnvelope) -> bool:
    """Stored since envelopes record their request (any of the extensions is there)."""
    return any(getattr(envelope, name) is not None for name in REQUEST_ATTRIBUTES)


@dataclass
class UnprovenRequests:
    """Events stored before envelopes recorded their request, whose Idempotency-Key or request hash
    columns are set: nothing hashed says what they must hold."""

    count: int = 0
    first: int | None = None
    last: int | None = None

    def add(self, sequence: int) -> None:
        self.count += 1
        self.first = sequence if self.first is None else self.first
        self.last = sequence


class ChainVerifier:
    """Re-walks the log in sequence order and remembers the first break, and the signed checkpoints
    it met (found by the hashed envelope's type, not by a column that can be edited)."""

    def __init__(self) -> None:
        self.sequence = 0
        self.head = GENESIS_SHA256
        self.first_break: ChainBreak | None = None
        self.checkpoints: list[tuple[int, AuditCheckpointSigned]] = []  # (its own sequence, the checkpoint)
        self.heads: dict[int, str] = {}  # the chain head at each sequence a checkpoint met attests
        # the first event whose envelope records its request; from there every event's request
        # columns must agree with its envelope (an event without the extensions has none)
        self.requests_hashed_from: int | None = None
        self.unproven_requests = UnprovenRequests()
        self.set_runs: list[SetRun] = []  # the events of each set, for its record to be held to

    def feed(
        self,
        sequence: int,
        canonical: bytes,
        stored_event_sha256: str | None,
        stored_chain_sha256: str | None,
        columns: Mapping[str, str | None] | None = None,
    ) -> None:
        if self.first_break is not None:
            return
        if sequence != self.sequence + 1:
            self.first_break = ChainBreak(self.sequence + 1, "missing event", str(self.sequence + 1), str(sequence))
            return
        computed = event_sha256(canonical)
        if computed != stored_event_sha256:
            self.first_break = ChainBreak(
                sequence, "event content does not match its hash", computed, str(stored_event_sha256)
            )
            return
        chained = chain_sha256(self.head, computed)
        if chained != stored_chain_sha256:
            self.first_break = ChainBreak(
                sequence, "chain hash does not follow its predecessor", chained, str(stored_chain_sha256)
            )
            return
        try:
            envelope = EventEnvelope.from_bytes(canonical)
        except ValueError:  # hashed as stored, but not a CloudEvent (rows older than the envelope format)
            self.sequence, self.head = sequence, chained
            return
        event = decode_event(envelope)
        if isinstance(event, AuditCheckpointSigned):  # hash-valid: a checkpoint, whatever its columns say
            self.checkpoints.append((sequence, event))
            if event.sequence == self.sequence:  # a checkpoint signs the head just before it
                self.heads[event.sequence] = self.head
        expected = expected_columns(envelope)
        columns = columns or {}
        for name, stored in columns.items():
            if expected.get(name, stored) != stored:
                self.first_break = ChainBreak(
                    sequence,
                    f"the stored column {name} disagrees with the hashed event",
                    str(expected[name]),
                    str(stored),
                )
                return
        if self.requests_hashed_from is None and carries_request(envelope):
            self.requests_hashed_from = sequence
        if self.requests_hashed_from is None:
            if columns.get("idempotency_key") is not None or columns.get("request_sha256") is not None:
                self.unproven_requests.add(sequence)
        elif (problem := request_columns_problem(envelope, columns)) is not None:
            name, should, found = problem
            self.first_break = ChainBreak(
                sequence, f"the stored column {name} disagrees with the hashed event", should, found
            )
            return
        if envelope.setsummarysha256 is not None:
            add_to_runs(self.set_runs, sequence, expected["actor"] or "", envelope)
        self.sequence, self.head = sequence, chained

    def head_at(self) -> tuple[int, str]:
        return self.sequence, self.head
