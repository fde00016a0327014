"""Event contracts: versioned, past-tense, frozen; carried in a CloudEvents 1.0 envelope.

The envelope is the one shape events have everywhere: in the ingest event table, on NATS,
and over HTTP. `decode_event` turns an envelope back into a domain event, upcasting old
shapes explicitly (see `UPCASTERS`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

EVENT_SOURCE = "/kpi-ledger/ingest"
SUBJECT_TOKEN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
Stage = Literal["self_assessment", "verification"]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    type: ClassVar[str]

    def subject(self) -> str:
        raise NotImplementedError

    def nats_subject(self) -> str:
        raise NotImplementedError


class Evidence(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1, max_length=500)
    number: str | None = Field(default=None, max_length=200)
    date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    url: str | None = Field(default=None, max_length=2000)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class MeasurementRecorded(_Event):
    """A unit's inputs for one indicator of a catalogue version and period were recorded."""

    type: ClassVar[str] = "vn.kpi.measurement.recorded.v1"

    catalogue_id: str
    catalogue_version: str
    period: int
    unit_id: str
    indicator: str
    stage: Stage = "self_assessment"
    inputs: dict[str, str | bool]
    not_applicable_reason: str | None = None
    evidence: tuple[Evidence, ...] = ()
    submitted_by: str

    def subject(self) -> str:
        return f"{self.catalogue_id}/{self.catalogue_version}/{self.period}/{self.unit_id}/{self.indicator}"

    def nats_subject(self) -> str:
        return f"kpi.measurement.recorded.v1.{self.catalogue_id}.{self.unit_id}"


class CatalogueVersionRegistered(_Event):
    """A catalogue version was validated and registered; it can never change afterwards."""

    type: ClassVar[str] = "vn.kpi.catalogue.registered.v1"

    catalogue_id: str
    version: str
    content_sha256: str
    document: dict[str, Any]
    registered_by: str

    def subject(self) -> str:
        return f"{self.catalogue_id}/{self.version}"

    def nats_subject(self) -> str:
        return f"kpi.catalogue.registered.v1.{self.catalogue_id}._"


class AuditCheckpointSigned(_Event):
    """The operator signed the chain head at a sequence; anyone holding this can later prove history was kept."""

    type: ClassVar[str] = "vn.kpi.audit.checkpoint.v1"

    sequence: int
    chain_sha256: str
    algorithm: Literal["ed25519"] = "ed25519"
    public_key: str
    signature: str
    signed_by: str

    def subject(self) -> str:
        return f"audit/{self.sequence}"

    def nats_subject(self) -> str:
        return "kpi.audit.checkpoint.v1._._"


DomainEvent = MeasurementRecorded | CatalogueVersionRegistered | AuditCheckpointSigned
EVENT_TYPES: dict[str, type[_Event]] = {
    cls.type: cls for cls in (MeasurementRecorded, CatalogueVersionRegistered, AuditCheckpointSigned)
}

# Old event shapes are read through explicit upcasters: (type) -> function(data) -> current data.
UPCASTERS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {}


class EventEnvelope(BaseModel):
    """A CloudEvents 1.0 structured-mode message, with the global `sequence` extension."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str = EVENT_SOURCE
    type: str
    subject: str
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str
    sequence: int
    data: dict[str, Any]

    def to_bytes(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> EventEnvelope:
        return cls.model_validate_json(raw)


def envelope_for(event: DomainEvent, *, event_id: str, sequence: int, recorded_at: datetime) -> EventEnvelope:
    return EventEnvelope(
        id=event_id,
        type=event.type,
        subject=event.subject(),
        time=recorded_at,
        dataschema=f"/v1/schemas/{event.type}",
        sequence=sequence,
        data=event.model_dump(mode="json"),
    )


def decode_event(envelope: EventEnvelope) -> DomainEvent | None:
    """The domain event an envelope carries, upcast to the current shape; None for unknown types."""
    event_type, data = envelope.type, envelope.data
    while event_type in UPCASTERS:
        event_type, upcast = UPCASTERS[event_type]
        data = upcast(data)
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        return None
    return cls.model_validate(data)  # type: ignore[return-value]
