"""The set record's proof, pure: runs collected from envelopes, records held to them."""

from __future__ import annotations

from datetime import UTC, datetime

from kpi_core.events import EventEnvelope, idempotency_key_sha256
from kpi_core.set_proof import (
    SetRecordRow,
    SetRun,
    add_to_runs,
    check_set_records,
    recorded_summary,
    summary_sha256,
)

SUMMARY = recorded_summary({"set_id": "s1", "stored": True, "imported": 2, "first_sequence": 5, "last_sequence": 6})


def envelope(sequence: int, key: str = "k", summary: str = SUMMARY) -> EventEnvelope:
    return EventEnvelope(
        id=f"e{sequence}",
        type="vn.kpi.measurement.recorded.v1",
        subject="s",
        time=datetime(2024, 1, 1, tzinfo=UTC),
        dataschema="/v1/schemas/x",
        sequence=sequence,
        idempotencykeysha256=idempotency_key_sha256(key),
        requestsha256="b" * 64,
        setsummarysha256=summary_sha256(summary),
        data={},
    )


def record(first: int = 5, last: int = 6, **changes: str) -> SetRecordRow:
    fields = {"set_id": "s1", "actor": "reporter", "idempotency_key": "k", "request_sha256": "b" * 64}
    fields |= {"summary": SUMMARY} | changes
    return SetRecordRow(first_sequence=first, last_sequence=last, **fields)


def runs_of(*envelopes: EventEnvelope, actor: str = "reporter") -> list[SetRun]:
    runs: list[SetRun] = []
    for one in envelopes:
        add_to_runs(runs, one.sequence, actor, one)
    return runs


def test_the_recorded_summary_leaves_out_its_sequences_which_are_the_record_s_columns() -> None:
    assert "sequence" not in SUMMARY and '"imported":2' in SUMMARY


def test_consecutive_events_of_one_set_are_one_run_and_another_set_starts_another() -> None:
    runs = runs_of(envelope(5), envelope(6), envelope(7, key="other"), envelope(9, key="other"))
    assert [(run.first, run.last) for run in runs] == [(5, 6), (7, 7), (9, 9)]


def test_a_record_true_to_its_run_passes() -> None:
    check = check_set_records(runs_of(envelope(5), envelope(6)), [record()])
    assert (check.first_break, check.unproven) == (None, [])


def test_each_field_of_a_record_is_held_to_the_hashed_events() -> None:
    runs = runs_of(envelope(5), envelope(6))
    for changes, name in [
        ({"idempotency_key": "x"}, "idempotency_key"),
        ({"request_sha256": "c" * 64}, "request_sha256"),
        ({"actor": "intruder"}, "actor"),
        ({"summary": SUMMARY.replace('"imported":2', '"imported":1')}, "summary"),
    ]:
        found = check_set_records(runs, [record(**changes)]).first_break
        assert found is not None and name in found.problem and found.sequence == 5


def test_a_missing_record_and_a_record_without_events_are_breaks_at_their_first_sequence() -> None:
    runs = runs_of(envelope(5), envelope(6), envelope(9, key="k2"))
    missing = check_set_records(runs, [record()]).first_break
    assert missing is not None and (missing.sequence, "missing" in missing.problem) == (9, True)
    shifted = check_set_records(runs, [record(5, 5), record(9, 9, idempotency_key="k2")]).first_break
    assert shifted is not None and shifted.sequence == 5


def test_records_older_than_the_first_hashed_set_are_counted_as_unproven_not_passed_silently() -> None:
    old = record(2, 3, set_id="old")
    check = check_set_records(runs_of(envelope(5), envelope(6)), [old, record()])
    assert (check.first_break, check.unproven) == (None, [old])
    assert check_set_records([], [old]).unproven == [old]
