"""The proof of ingest's record of measurement and verification sets (what a repeated set answers).

A set that stores something records, under its Idempotency-Key, the request's hash and the import
summary it answered; a request repeated with the key is answered from that record, so an edited
record would answer a retry falsely, and a forged one would answer a set never stored. Each event
of a set therefore carries, inside its hashed envelope, the SHA-256 of the set's key, of its
request and of its recorded summary (`idempotencykeysha256`, `requestsha256`, `setsummarysha256`);
the events of one set are consecutive (one append). The verifier collects those runs from the log
and holds every record to them: one run per record, over exactly its sequences, with its key,
request, actor and summary, and no run without its record.

A set that changes nothing stores nothing and keeps no record (nothing in the log could prove one):
repeated, it is compared with the log again and answers the same. Records stored before the
events carried these hashes cannot be proven; the verifier counts them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kpi_core.events import EventEnvelope, idempotency_key_sha256

SEQUENCE_FIELDS = ("first_sequence", "last_sequence")  # the record's own columns, not its summary text


def recorded_summary(summary: Mapping[str, Any]) -> str:
    """The summary as ingest records it and the set's events hash it (its sequences are the record's
    columns: they are known only once the events are appended)."""
    kept = {name: value for name, value in summary.items() if name not in SEQUENCE_FIELDS}
    return json.dumps(kept, ensure_ascii=False, separators=(",", ":"))


def summary_sha256(recorded: str) -> str:
    return hashlib.sha256(recorded.encode("utf-8")).hexdigest()


@dataclass
class SetRun:
    """Consecutive events of one set, as their hashed envelopes say."""

    first: int
    last: int
    actor: str
    idempotency_key_sha256: str | None
    request_sha256: str | None
    summary_sha256: str

    def continued_by(self, sequence: int, actor: str, envelope: EventEnvelope) -> bool:
        return sequence == self.last + 1 and (actor, *_hashes(envelope)) == (
            self.actor,
            self.idempotency_key_sha256,
            self.request_sha256,
            self.summary_sha256,
        )


def _hashes(envelope: EventEnvelope) -> tuple[str | None, str | None, str | None]:
    return envelope.idempotencykeysha256, envelope.requestsha256, envelope.setsummarysha256


def add_to_runs(runs: list[SetRun], sequence: int, actor: str, envelope: EventEnvelope) -> None:
    """One more event of a set (an envelope with `setsummarysha256`), in sequence order."""
    if runs and runs[-1].continued_by(sequence, actor, envelope):
        runs[-1].last = sequence
        return
    key, request, summary = _hashes(envelope)
    assert summary is not None
    runs.append(SetRun(sequence, sequence, actor, key, request, summary))


@dataclass(frozen=True)
class SetRecordRow:
    """A row of ingest's set record, as stored."""

    set_id: str
    actor: str
    idempotency_key: str
    request_sha256: str
    first_sequence: int
    last_sequence: int
    summary: str


@dataclass(frozen=True)
class SetRecordBreak:
    sequence: int
    problem: str
    expected: str
    found: str


@dataclass(frozen=True)
class SetRecordCheck:
    first_break: SetRecordBreak | None
    unproven: list[SetRecordRow]  # recorded before the set's events carried the hashes


def check_set_records(runs: Iterable[SetRun], records: Iterable[SetRecordRow]) -> SetRecordCheck:
    """Every record against the runs of the log, reported at the first sequence affected."""
    by_range = {(run.first, run.last): run for run in runs}
    hashed_from = min((first for first, _ in by_range), default=None)  # the first set whose events carry the hashes
    problems: list[SetRecordBreak] = []
    unproven: list[SetRecordRow] = []
    recorded: set[tuple[int, int]] = set()
    for record in records:
        span = (record.first_sequence, record.last_sequence)
        run = by_range.get(span)
        if run is None:
            if hashed_from is None or record.last_sequence < hashed_from:
                unproven.append(record)
            else:
                problems.append(
                    SetRecordBreak(
                        record.first_sequence,
                        "a set record that no set's events in the log stand for",
                        "the events of a set over its sequences",
                        f"set {record.set_id} over {span[0]} to {span[1]}",
                    )
                )
            continue
        recorded.add(span)
        if (problem := _disagreement(run, record)) is not None:
            problems.append(problem)
    for span, run in by_range.items():
        if span not in recorded:
            problems.append(
                SetRecordBreak(
                    run.first, "the events of a set whose record is missing", f"a set record over {span}", "none"
                )
            )
    return SetRecordCheck(min(problems, key=lambda found: found.sequence, default=None), unproven)


def _disagreement(run: SetRun, record: SetRecordRow) -> SetRecordBreak | None:
    recorded = summary_sha256(record.summary)
    claimed = _summary_set_id(record.summary)
    for name, expected, found in (
        ("actor", run.actor, record.actor),
        ("idempotency_key", run.idempotency_key_sha256, idempotency_key_sha256(record.idempotency_key)),
        ("request_sha256", run.request_sha256, record.request_sha256),
        ("summary", run.summary_sha256, recorded),
        ("set_id", record.set_id, claimed),
    ):
        if expected != found:
            return SetRecordBreak(
                run.first, f"the set record's {name} disagrees with the hashed events", str(expected), str(found)
            )
    return None


def _summary_set_id(summary: str) -> str | None:
    try:
        shown = json.loads(summary)
    except ValueError:
        return None
    return shown.get("set_id") if isinstance(shown, dict) else None
