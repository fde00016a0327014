"""Event contracts: versioned, past-tense, frozen; carried in a CloudEvents 1.0 envelope.

The envelope is the one shape events have everywhere: in the ingest event table, on NATS,
and over HTTP. `decode_event` turns an envelope back into a domain event, upcasting old
shapes explicitly (see `UPCASTERS`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
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
    # verification stage only: the evaluator accepted the self-assessed value or replaced it, with a reason
    decision: Literal["accepted", "adjusted"] | None = None
    reason: str | None = None
    verifies_event_id: str | None = None
    # a verification that replaces an earlier adjustment names it
    supersedes: str | None = None
    # a resubmission that answers an evaluator's request for evidence
    responds_to: str | None = None

    def subject(self) -> str:
        return f"{self.catalogue_id}/{self.catalogue_version}/{self.period}/{self.unit_id}/{self.indicator}"


class _PeriodEvent(_Event):
    catalogue_id: str
    catalogue_version: str
    period: int

    def subject(self) -> str:
        return f"{self.catalogue_id}/{self.catalogue_version}/{self.period}"


class EvidenceRequested(_PeriodEvent):
    """An evaluator asked a unit for more evidence on one component."""

    type: ClassVar[str] = "vn.kpi.evidence.requested.v1"

    unit_id: str
    indicator: str
    message: str
    requested_by: str

    def subject(self) -> str:
        return f"{super().subject()}/{self.unit_id}/{self.indicator}"


class PeriodClosed(_PeriodEvent):
    """Submissions for a catalogue version and period are closed; late ones are refused."""

    type: ClassVar[str] = "vn.kpi.period.closed.v1"

    closed_by: str
    reason: str | None = None


class UnitReopened(_PeriodEvent):
    """An evaluator reopened a closed period for one unit."""

    type: ClassVar[str] = "vn.kpi.period.reopened.v1"

    unit_id: str
    reason: str
    reopened_by: str

    def subject(self) -> str:
        return f"{super().subject()}/{self.unit_id}"


class ContextReported(_PeriodEvent):
    """A unit's general information ("Thông tin chung") for a period: population, civil servants..."""

    type: ClassVar[str] = "vn.kpi.context.reported.v1"

    unit_id: str
    values: dict[str, str | bool]
    submitted_by: str

    def subject(self) -> str:
        return f"{super().subject()}/{self.unit_id}"


class RankedUnit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    unit_id: str
    rank: int
    of: int
    total: str
    pillars: dict[str, str]


class RankMove(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    unit_id: str
    from_rank: str | None
    to_rank: str | None


class MissingDecisions(BaseModel):
    """What a publication's ranking lacks: the components of one unit with no verification decision."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit_id: str
    count: int
    first: tuple[str, ...]


class ResultPublished(_PeriodEvent):
    """An approver published the ranking of a catalogue version and period at the cut `as_of_sequence`
    (the log's head when it was recorded: every event before this one). A restatement names the
    publication it replaces. The scoring service freezes the ranking at the cut and publishes it on
    the score stream (vn.kpi.result.frozen.v1, with the ranks a restatement moved); `ranking` and
    `moved` are filled only in publications recorded before that, which froze the ranking here."""

    type: ClassVar[str] = "vn.kpi.result.published.v1"

    publication_id: str
    stage: Stage
    as_of_sequence: int
    ranking: tuple[RankedUnit, ...] = ()
    replaces: str | None = None
    moved: tuple[RankMove, ...] = ()
    reason: str | None = None
    # published although some components had no verification decision: why, and what was missing
    incomplete_reason: str | None = None
    missing: tuple[MissingDecisions, ...] = ()
    # four eyes: who adjusted verifications of this period, beside who approved the publication
    adjusted_by: tuple[str, ...] = ()
    published_by: str


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


class PeerGroupRegistered(_Event):
    """A version of a peer group's unit list was registered; the latest version of a group is in force."""

    type: ClassVar[str] = "vn.kpi.units.registered.v1"

    peer_group_id: str
    version: str
    content_sha256: str
    document: dict[str, Any]
    registered_by: str

    def subject(self) -> str:
        return f"units/{self.peer_group_id}/{self.version}"


Role = Literal["reporter", "evaluator", "approver", "auditor", "admin"]


class ApiKeyGranted(_Event):
    """An admin granted an API key (or rotated one: a new secret for the same id, the old one ends).
    Only the secret's SHA-256 is ever recorded."""

    type: ClassVar[str] = "vn.kpi.keys.granted.v1"

    key_id: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    roles: tuple[Role, ...]
    units: tuple[str, ...] = ()  # "*" = every unit
    peer_groups: tuple[str, ...] = ("*",)  # the peer groups (and so catalogues) the key acts in
    expires_at: datetime | None = None
    rotated: bool = False
    granted_by: str

    def subject(self) -> str:
        return f"keys/{self.key_id}"


class ApiKeyRevoked(_Event):
    """An admin revoked an API key; it is refused everywhere from then on."""

    type: ClassVar[str] = "vn.kpi.keys.revoked.v1"

    key_id: str
    reason: str
    revoked_by: str

    def subject(self) -> str:
        return f"keys/{self.key_id}"


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


class EventWithheld(_Event):
    """A placeholder the relay published in place of an event it could not publish at all (the event
    exceeds a transport limit, such as the server's maximum payload, that no retry can change). The
    event stays in the log; the placeholder holds its position on the stream, so the events behind it
    are not held up and none moves. It is not a domain event: a consumer passes over it (recording a
    dead letter of its own) and never applies it as the event it names. It carries the envelope's id
    and sequence of that event."""

    type: ClassVar[str] = "vn.kpi.event.withheld.v1"

    sequence: int = Field(description="The withheld event's sequence (its position on the stream)")
    event_id: str
    event_type: str
    event_subject: str = Field(description="The withheld event's CloudEvents subject")
    nats_subject: str = Field(description="The NATS subject it was to be published on")
    event_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="The SHA-256 of the withheld envelope")
    size: int = Field(description="The withheld envelope's size in bytes")
    reason: str = Field(description="Why it cannot be published, as the relay found it")

    def subject(self) -> str:
        return self.event_subject


def withheld_envelope(original: EventEnvelope, withheld: EventWithheld) -> EventEnvelope:
    """The placeholder's envelope: the original's id, source, subject, time, sequence and request id
    (what a consumer logs it under), the placeholder's type and data; the same bytes whichever relay
    builds it."""
    return original.model_copy(
        update={
            "type": EventWithheld.type,
            "dataschema": f"/v1/schemas/{EventWithheld.type}",
            "idempotencykeysha256": None,
            "requestsha256": None,
            "setsummarysha256": None,
            "data": withheld.model_dump(mode="json"),
        }
    )


DomainEvent = (
    MeasurementRecorded
    | CatalogueVersionRegistered
    | PeerGroupRegistered
    | AuditCheckpointSigned
    | EvidenceRequested
    | PeriodClosed
    | UnitReopened
    | ContextReported
    | ResultPublished
    | ApiKeyGranted
    | ApiKeyRevoked
)
EVENT_TYPES: dict[str, type[_Event]] = {
    cls.type: cls
    for cls in (
        MeasurementRecorded,
        CatalogueVersionRegistered,
        PeerGroupRegistered,
        AuditCheckpointSigned,
        EvidenceRequested,
        PeriodClosed,
        UnitReopened,
        ContextReported,
        ResultPublished,
        ApiKeyGranted,
        ApiKeyRevoked,
    )
}

ACTOR_FIELDS = (
    "submitted_by",
    "requested_by",
    "closed_by",
    "reopened_by",
    "published_by",
    "registered_by",
    "granted_by",
    "revoked_by",
    "signed_by",
)


@dataclass(frozen=True)
class EventIndex:
    """What the log stores beside an event to find it by (unit, catalogue, who): always derived
    from the event, on append and again on verification, so an edited column is caught."""

    catalogue_id: str | None
    unit_id: str | None
    actor: str | None


def index_of(event: DomainEvent) -> EventIndex:
    catalogue, unit, actor = _indexed_fields(type(event))
    return EventIndex(
        getattr(event, "catalogue_id", None) if catalogue else None,
        getattr(event, "unit_id", None) if unit else None,
        str(getattr(event, actor)) if actor is not None else None,
    )


@cache
def _indexed_fields(event_type: type[BaseModel]) -> tuple[bool, bool, str | None]:
    """Which index fields an event type has (asked once a type: a set indexes thousands of events)."""
    fields = event_type.model_fields
    actor = next((name for name in ACTOR_FIELDS if name in fields), None)
    return "catalogue_id" in fields, "unit_id" in fields, actor


# Old event shapes are read through explicit upcasters: (type) -> function(data) -> current data.
UPCASTERS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {}


SHA256_HEX = r"^[0-9a-f]{64}$"
# The optional extension attributes, in the order they are written; an envelope without them (every
# event stored before they existed) is written exactly as it always was.
REQUEST_ATTRIBUTES = ("requestid", "idempotencykeysha256", "requestsha256", "setsummarysha256")


class EventEnvelope(BaseModel):
    """A CloudEvents 1.0 structured-mode message, with the global `sequence` extension and, on events
    a request stored, the request's extensions (`requestid`, `idempotencykeysha256`, `requestsha256`;
    on the events of a measurement or verification set, `setsummarysha256` too)."""

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
    requestid: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="The request id (X-Request-Id) of the HTTP request that stored the event",
    )
    idempotencykeysha256: str | None = Field(
        default=None, pattern=SHA256_HEX, description="The SHA-256 of the Idempotency-Key the event was stored under"
    )
    requestsha256: str | None = Field(
        default=None, pattern=SHA256_HEX, description="The SHA-256 of the request body (what a retry must repeat)"
    )
    setsummarysha256: str | None = Field(
        default=None,
        pattern=SHA256_HEX,
        description="On each event of a measurement or verification set: the SHA-256 of the set's import "
        "summary as ingest records it (what a repeated set is answered with)",
    )
    data: dict[str, Any]

    def shown(self) -> dict[str, Any]:
        """The envelope as JSON shows it: an absent extension is left out, not shown as null. The data
        is JSON already (an event's `model_dump(mode="json")`, or what was read from JSON): it is
        given as it is, not walked through again (a score event carries a thousand lines)."""
        shown = self.model_dump(mode="json", exclude={"data"})
        for name in REQUEST_ATTRIBUTES:
            if shown[name] is None:
                del shown[name]
        shown["data"] = self.data
        return shown

    def to_bytes(self) -> bytes:
        return json.dumps(self.shown(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> EventEnvelope:
        return cls.model_validate_json(raw)


@dataclass(frozen=True)
class RequestAttributes:
    """What an envelope records of the request that stored its event (the extension attributes):
    its request id, the SHA-256 of its Idempotency-Key, the SHA-256 of its body, and for a set the
    SHA-256 of the summary recorded under its key."""

    request_id: str | None = None
    idempotency_key_sha256: str | None = None
    request_sha256: str | None = None
    set_summary_sha256: str | None = None

    @classmethod
    def of(
        cls, request_id: str | None, idempotency_key: str | None = None, request_sha256: str | None = None
    ) -> RequestAttributes:
        key_sha256 = idempotency_key_sha256(idempotency_key) if idempotency_key is not None else None
        return cls(request_id, key_sha256, request_sha256)

    def shown(self) -> dict[str, str]:
        """The extension attributes to write, in their order (none that is absent)."""
        values = (self.request_id, self.idempotency_key_sha256, self.request_sha256, self.set_summary_sha256)
        return {name: value for name, value in zip(REQUEST_ATTRIBUTES, values, strict=True) if value is not None}


def idempotency_key_sha256(key: str) -> str:
    """What the log keeps of an Idempotency-Key: its SHA-256, never the key (see README, Audit)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def envelope_for(
    event: DomainEvent,
    *,
    event_id: str,
    sequence: int,
    recorded_at: datetime,
    request: RequestAttributes | None = None,
) -> EventEnvelope:
    request = request or RequestAttributes()
    return EventEnvelope(
        id=event_id,
        type=event.type,
        subject=event.subject(),
        time=recorded_at,
        dataschema=f"/v1/schemas/{event.type}",
        sequence=sequence,
        requestid=request.request_id,
        idempotencykeysha256=request.idempotency_key_sha256,
        requestsha256=request.request_sha256,
        setsummarysha256=request.set_summary_sha256,
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
