"""A set's append got faster, never different (issue 13): the envelope text written a batch at a time
is the text a single append writes, byte for byte, on any text an event may carry; the batch's ids
are version 4 UUIDs; the columns beside an envelope and a stored measurement read back are what
they were; a set's pause of the cyclic collector ends when the last set ends."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kpi_core.events import (
    ACTOR_FIELDS,
    EVENT_TYPES,
    ApiKeyGranted,
    CatalogueVersionRegistered,
    DomainEvent,
    Evidence,
    MeasurementRecorded,
    PeriodClosed,
    RequestAttributes,
    envelope_for,
    index_of,
)
from kpi_ingest.adapters.event_store import JSON_TEXT, EnvelopeWriter, canonical_envelope, event_ids
from kpi_ingest.adapters.set_store import _measurement

RECORDED_AT = datetime(2024, 5, 20, 8, 30, 15, 123456, tzinfo=UTC)
# text that JSON escapes (quotes, backslashes, control characters) or that some writers escape and
# others do not (DEL, C1 controls, line and paragraph separators, a byte order mark, astral planes)
TRICKY = ['"', "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f", "\x85", "\u2028", "\u2029", "\ufeff"]
TRICKY += ["\U0001f600", "\U0010ffff", "ệ", "Đ", "/", "</script>", "'", "%", "{", "]"]


def _text(rnd: random.Random) -> str:
    """Random text, no lone surrogate (no JSON body or file row can carry one)."""
    picked = []
    for _ in range(rnd.randint(0, 10)):
        if rnd.random() < 0.5:
            picked.append(rnd.choice(TRICKY))
        else:
            code = rnd.randint(0, 0x10FFFF)
            picked.append(chr(code if not 0xD800 <= code <= 0xDFFF else 0x41))
    return "".join(picked)


def _random_measurement(rnd: random.Random) -> MeasurementRecorded:
    def maybe() -> str | None:
        return rnd.choice([None, _text(rnd)])

    return MeasurementRecorded(
        catalogue_id=_text(rnd),
        catalogue_version=_text(rnd),
        period=rnd.randint(2000, 2100),
        unit_id=_text(rnd),
        indicator=_text(rnd),
        stage=rnd.choice(["self_assessment", "verification"]),
        inputs={_text(rnd): rnd.choice([True, False, _text(rnd)]) for _ in range(rnd.randint(0, 4))},
        not_applicable_reason=maybe(),
        evidence=tuple(
            Evidence(title=_text(rnd) or "t", number=maybe(), url=maybe(), date=rnd.choice([None, "2024-03-01"]))
            for _ in range(rnd.randint(0, 2))
        ),
        submitted_by=_text(rnd),
        decision=rnd.choice([None, "accepted", "adjusted"]),
        reason=maybe(),
        verifies_event_id=maybe(),
        supersedes=maybe(),
        responds_to=maybe(),
    )


def test_a_measurement_is_written_as_json_dumps_writes_it_on_any_text() -> None:
    rnd = random.Random(13)
    for _ in range(3_000):
        event = _random_measurement(rnd)
        assert event.model_dump_json() == JSON_TEXT.encode(event.model_dump(mode="json"))


REQUESTS = [
    None,
    RequestAttributes.of("agency-42.7"),
    RequestAttributes("req-1", "ab" * 32, "cd" * 32, "ef" * 32),
]


@pytest.mark.parametrize("request_attributes", REQUESTS)
def test_a_batch_writes_every_envelope_as_a_single_append_does(request_attributes: RequestAttributes | None) -> None:
    rnd = random.Random(42)
    events: list[DomainEvent] = [_random_measurement(rnd) for _ in range(200)]
    events += [
        CatalogueVersionRegistered(
            catalogue_id="c\u2028",
            version="1.0",
            content_sha256="0" * 64,
            document={"weight": 0.1, "big": 1e16, "small": 1e-7, "nested": [1.5, "Đ\x7f", None, True]},
            registered_by="admin",
        ),
        ApiKeyGranted(key_id="k", sha256="a" * 64, roles=("reporter",), expires_at=RECORDED_AT, granted_by='ad"min'),
        PeriodClosed(catalogue_id="c", catalogue_version="1.0", period=2024, closed_by="e\\v"),
    ]
    writer = EnvelopeWriter(
        envelope_for(events[0], event_id="", sequence=0, recorded_at=RECORDED_AT).model_dump(mode="json")["time"],
        request_attributes,
    )
    ids = event_ids(len(events), RECORDED_AT)
    for sequence, (event, event_id) in enumerate(zip(events, ids, strict=True), start=1):
        single = envelope_for(
            event, event_id=event_id, sequence=sequence, recorded_at=RECORDED_AT, request=request_attributes
        ).to_bytes()
        assert writer.text(event, event_id, sequence, event.subject()).encode("utf-8") == single
        assert canonical_envelope(event, event_id, sequence, writer.shown_time, request_attributes) == single


def test_a_batch_of_ids_are_distinct_version_7_uuids_of_the_moment_they_were_recorded() -> None:
    ids = event_ids(5_000, RECORDED_AT)
    assert len(set(ids)) == len(ids) and event_ids(0, RECORDED_AT) == []
    milliseconds = int(RECORDED_AT.timestamp() * 1000)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (7, uuid.RFC_4122, text)
        assert parsed.int >> 80 == milliseconds
    # what the event_id index gains: a later moment's ids sort after every earlier one
    later = event_ids(1_000, RECORDED_AT + timedelta(milliseconds=1))
    assert min(later) > max(ids)


def _index_as_it_was(event: DomainEvent) -> tuple[Any, Any, Any]:
    actor = next((str(getattr(event, name)) for name in ACTOR_FIELDS if hasattr(event, name)), None)
    return getattr(event, "catalogue_id", None), getattr(event, "unit_id", None), actor


def test_the_index_of_every_event_type_is_what_it_was() -> None:
    samples: list[DomainEvent] = [
        _random_measurement(random.Random(1)),
        ApiKeyGranted(key_id="k", sha256="a" * 64, roles=("admin",), granted_by="root"),
        PeriodClosed(catalogue_id="c", catalogue_version="1.0", period=2024, closed_by="e"),
    ]
    assert {type(event) for event in samples} <= set(EVENT_TYPES.values())
    for event in samples:
        index = index_of(event)
        assert (index.catalogue_id, index.unit_id, index.actor) == _index_as_it_was(event)


class _Row:
    def __init__(self, envelope: str) -> None:
        self.envelope, self.request_sha256 = envelope, None


def test_a_stored_measurement_reads_back_as_the_event_it_recorded() -> None:
    rnd = random.Random(7)
    for sequence in range(1, 200):
        event = _random_measurement(rnd)
        stored = envelope_for(event, event_id="e", sequence=sequence, recorded_at=RECORDED_AT).to_bytes()
        assert _measurement(_Row(stored.decode("utf-8"))) == MeasurementRecorded.model_validate(
            json.loads(stored)["data"]
        )
