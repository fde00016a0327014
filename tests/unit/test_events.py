"""Event contracts: CloudEvents envelopes round-trip, subjects are stable, old shapes are upcast."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from kpi_core.events import (
    UPCASTERS,
    CatalogueVersionRegistered,
    EventEnvelope,
    Evidence,
    MeasurementRecorded,
    RequestAttributes,
    decode_event,
    envelope_for,
)
from kpi_ingest.adapters.event_store import canonical_envelope

RECORDED_AT = datetime(2024, 5, 20, 8, 30, 15, 123456, tzinfo=UTC)


def _measurement(**changes: Any) -> MeasurementRecorded:
    fields: dict[str, Any] = {
        "catalogue_id": "mini-dti",
        "catalogue_version": "1.0",
        "period": 2024,
        "unit_id": "gia-lai",
        "indicator": "3.1",
        "stage": "verification",
        "inputs": {"a": "12", "b": "40", "c": True},
        "evidence": (Evidence(title="Quyết định số 12/QĐ-UBND", date="2024-03-01"),),
        "submitted_by": "svc-test",
    }
    return MeasurementRecorded(**{**fields, **changes})


def test_a_measurement_recorded_round_trips_through_envelope_bytes():
    event = _measurement()
    envelope = envelope_for(event, event_id="ev-1", sequence=42, recorded_at=RECORDED_AT)
    again = EventEnvelope.from_bytes(envelope.to_bytes())
    assert again == envelope
    assert decode_event(again) == event
    assert (again.type, again.subject, again.sequence, again.time) == (
        "vn.kpi.measurement.recorded.v1",
        "mini-dti/1.0/2024/gia-lai/3.1",
        42,
        RECORDED_AT,
    )
    assert again.dataschema == "/v1/schemas/vn.kpi.measurement.recorded.v1"
    assert (again.specversion, again.source, again.datacontenttype) == ("1.0", "/kpi-ledger/ingest", "application/json")


def test_a_catalogue_version_registered_round_trips_with_its_document(mini):
    event = CatalogueVersionRegistered(
        catalogue_id=mini.id,
        version=mini.version,
        content_sha256=mini.content_hash(),
        document=mini.document(),
        registered_by="svc-test",
    )
    envelope = envelope_for(event, event_id="ev-0", sequence=1, recorded_at=RECORDED_AT)
    decoded = decode_event(EventEnvelope.from_bytes(envelope.to_bytes()))
    assert decoded == event
    assert isinstance(decoded, CatalogueVersionRegistered)
    assert decoded.document == mini.document()
    assert envelope.subject == "mini-dti/1.0"


def test_envelope_bytes_are_compact_utf8_json_keeping_vietnamese_text():
    raw = envelope_for(_measurement(), event_id="ev-1", sequence=1, recorded_at=RECORDED_AT).to_bytes()
    assert "Quyết định".encode() in raw
    assert b": " not in raw
    assert json.loads(raw)["data"]["inputs"] == {"a": "12", "b": "40", "c": True}


def test_an_envelope_of_an_unknown_type_decodes_to_none():
    envelope = envelope_for(_measurement(), event_id="ev-1", sequence=1, recorded_at=RECORDED_AT)
    unknown = envelope.model_copy(update={"type": "vn.kpi.something.else.v1"})
    assert decode_event(unknown) is None


def test_an_old_event_shape_is_upcast_by_its_registered_upcaster(monkeypatch):
    def v0_to_v1(data: dict[str, Any]) -> dict[str, Any]:
        renamed = {key: value for key, value in data.items() if key != "province"}
        return {**renamed, "unit_id": data["province"], "stage": "self_assessment"}

    monkeypatch.setitem(UPCASTERS, "vn.kpi.measurement.recorded.v0", ("vn.kpi.measurement.recorded.v1", v0_to_v1))
    old_data = _measurement().model_dump(mode="json")
    old_data["province"] = old_data.pop("unit_id")
    del old_data["stage"]
    old = EventEnvelope(
        id="ev-old",
        type="vn.kpi.measurement.recorded.v0",
        subject="mini-dti/1.0/2024/gia-lai/3.1",
        time=RECORDED_AT,
        dataschema="/v1/schemas/vn.kpi.measurement.recorded.v0",
        sequence=3,
        data=old_data,
    )
    assert decode_event(old) == _measurement(stage="self_assessment")


# An envelope as ingest stored it before envelopes recorded their request, byte for byte.
STORED_BEFORE_THE_EXTENSIONS = (
    b'{"specversion":"1.0","id":"ev-9","source":"/kpi-ledger/ingest","type":"vn.kpi.period.closed.v1",'
    b'"subject":"mini-dti/1.0/2024","time":"2024-05-20T08:30:15.123456Z","datacontenttype":"application/json",'
    b'"dataschema":"/v1/schemas/vn.kpi.period.closed.v1","sequence":9,"data":{"catalogue_id":"mini-dti",'
    b'"catalogue_version":"1.0","period":2024,"closed_by":"eva","reason":null}}'
)


def test_an_envelope_stored_before_the_request_extensions_is_written_again_byte_for_byte():
    """Replays, sync copies and the stream witness hash what `to_bytes` writes: an old event must not change."""
    envelope = EventEnvelope.from_bytes(STORED_BEFORE_THE_EXTENSIONS)
    assert envelope.requestid is None and envelope.idempotencykeysha256 is None
    assert envelope.to_bytes() == STORED_BEFORE_THE_EXTENSIONS
    assert "requestid" not in envelope.shown() and envelope.shown()["data"]["reason"] is None


def test_an_envelope_records_its_request_as_extensions_before_data_and_round_trips():
    request = RequestAttributes.of("agency-42.7", "set-2024-q1", "ab" * 32)
    envelope = envelope_for(_measurement(), event_id="ev-1", sequence=42, recorded_at=RECORDED_AT, request=request)
    raw = envelope.to_bytes()
    shown = json.loads(raw)
    assert list(shown)[-4:] == ["requestid", "idempotencykeysha256", "requestsha256", "data"]
    assert shown["idempotencykeysha256"] == hashlib.sha256(b"set-2024-q1").hexdigest()
    assert b"set-2024-q1" not in raw  # the key itself is never in the log
    assert EventEnvelope.from_bytes(raw).to_bytes() == raw


def test_the_batch_append_writes_the_bytes_of_a_single_append_with_the_request():
    request = RequestAttributes.of("agency-42.7")
    single = envelope_for(_measurement(), event_id="ev-1", sequence=42, recorded_at=RECORDED_AT, request=request)
    shown_time = single.model_dump(mode="json")["time"]
    assert canonical_envelope(_measurement(), "ev-1", 42, shown_time, request) == single.to_bytes()
