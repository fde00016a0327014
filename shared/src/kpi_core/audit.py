"""Tamper evidence: every event's hash and a chain over the global sequence.

`event_sha256` is the SHA-256 of the event's canonical bytes (its CloudEvents envelope as stored);
`chain_sha256` is the SHA-256 of the predecessor's chain hash followed by this event's hash.
Changing, removing or reordering anything stored breaks the chain at that event.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

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


class ChainVerifier:
    """Re-walks the log in sequence order and remembers the first break."""

    def __init__(self) -> None:
        self.sequence = 0
        self.head = GENESIS_SHA256
        self.first_break: ChainBreak | None = None

    def feed(
        self, sequence: int, canonical: bytes, stored_event_sha256: str | None, stored_chain_sha256: str | None
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
        self.sequence, self.head = sequence, chained

    def head_at(self) -> tuple[int, str]:
        return self.sequence, self.head
