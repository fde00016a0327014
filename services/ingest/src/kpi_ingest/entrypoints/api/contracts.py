"""What the ingest endpoints answer: the response models OpenAPI shows (request bodies are in schemas.py).

Open-ended parts (a catalogue's rules, an event's data, a JSON Schema) are `dict[str, Any]`; models
whose shape may grow allow extra fields, so that nothing a route returns is filtered away.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def replayed(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The 200 a repeated request with the same Idempotency-Key answers: what the first one recorded."""
    return {200: {"model": model, "description": "Replayed: what was recorded for this Idempotency-Key"}}


class Registered(BaseModel):
    """A catalogue version or unit list registered: the event that records it."""

    id: str
    version: str
    event_id: str
    sequence: int


class IndicatorNode(BaseModel):
    """One node of a catalogue (pillar, group, component, data line) as registered; unset fields are absent."""

    model_config = ConfigDict(extra="allow")

    code: str
    parent: str | None = None
    level: str
    name_vi: str
    name_en: str | None = None
    max_points: str | None = None
    scored: bool = True
    inputs: list[dict[str, Any]] = Field(default_factory=list)
    rule: dict[str, Any] | None = None


class CatalogueDocument(BaseModel):
    """A catalogue version as registered (docs/catalogue-format.md)."""

    model_config = ConfigDict(extra="allow")

    format: str
    id: str
    version: str
    kind: str
    title_vi: str
    title_en: str | None = None
    peer_group: str
    period_reference_day: str
    total_max_points: str | None = None
    source: dict[str, Any]
    nodes: list[IndicatorNode]


class UnitEntry(BaseModel):
    """A unit of a peer group, with its validity and predecessors; unset fields are absent."""

    model_config = ConfigDict(extra="allow")

    id: str
    name_vi: str
    name_en: str | None = None
    code: str | None = None
    kind: str
    valid_from: str | None = None
    valid_to: str | None = None
    predecessors: list[str] = Field(default_factory=list)
    note: str | None = None


class PeerGroupDocument(BaseModel):
    """A peer group's unit list in its version in force; `valid_on` when asked for one period or day."""

    model_config = ConfigDict(extra="allow")

    format: str
    id: str
    version: str
    title_vi: str
    title_en: str | None = None
    sources: list[dict[str, Any]]
    notes: str | None = None
    units: list[UnitEntry]
    valid_on: str | None = None


class CloudEvent(BaseModel):
    """An event of the log as a CloudEvents 1.0 envelope, with the global `sequence` extension and,
    on an event a request stored, that request's extensions (absent on events stored before them)."""

    specversion: str
    id: str
    source: str
    type: str
    subject: str
    time: str
    datacontenttype: str
    dataschema: str
    sequence: int
    requestid: str | None = Field(default=None, description="The X-Request-Id of the request that stored it")
    idempotencykeysha256: str | None = Field(default=None, description="The SHA-256 of its Idempotency-Key")
    requestsha256: str | None = Field(default=None, description="The SHA-256 of the request's body")
    setsummarysha256: str | None = Field(
        default=None, description="On a set's events: the SHA-256 of the set's recorded import summary"
    )
    data: dict[str, Any] = Field(description="The event's fields, as its JSON Schema (/v1/schemas/{type}) says")


class EventPage(BaseModel):
    events: list[CloudEvent]
    next_after: int = Field(description="The cursor for the next page (`after`)")


class ChainBreak(BaseModel):
    sequence: int
    problem: str
    expected: str
    found: str


class CheckpointCheck(BaseModel):
    sequence: int
    event_sequence: int
    signature_valid: bool
    matches_chain: bool
    trusted_key: bool
    valid: bool


class WithheldEvent(BaseModel):
    """An event the relay could not publish at all: it is in the log, a placeholder in its place on the stream."""

    sequence: int
    event_id: str
    type: str
    nats_subject: str = Field(description="The subject it was to be published on")
    size: int = Field(description="Its envelope's size in bytes")
    event_sha256: str = Field(description="The SHA-256 of its envelope, which the placeholder names")
    reason: str = Field(description="Why no retry could publish it")
    withheld_at: str


class ChainReport(BaseModel):
    """The hash chain re-walked: its head, the first break if any, and every signed checkpoint."""

    model_config = ConfigDict(extra="allow")

    ok: bool
    events: int
    head_sequence: int
    head_sha256: str
    first_break: ChainBreak | None
    checkpoints: list[CheckpointCheck]
    stream: dict[str, Any] = Field(
        description="the comparison with the event stream on NATS: compared (bool), messages, last_sequence, reason, "
        "withheld (the sequences whose placeholder stands on the stream in their place, if any)"
    )
    warnings: list[str] = Field(description="what this verification could not prove, and why")


class CheckpointSigned(BaseModel):
    """A signed checkpoint of the chain head, as published in the log."""

    model_config = ConfigDict(extra="allow")

    event_id: str
    event_sequence: int
    sequence: int
    chain_sha256: str
    algorithm: str
    public_key: str
    signature: str
    signed_by: str


class Accepted(BaseModel):
    """A workflow step recorded as an event (or, with the same Idempotency-Key again, the one recorded)."""

    model_config = ConfigDict(extra="allow")

    event_id: str
    sequence: int
    type: str
    replayed: bool


class PublicationAccepted(Accepted):
    publication: dict[str, Any] = Field(
        description="The vn.kpi.result.published.v1 event's data: the cut (`as_of_sequence`) and what was missing. "
        "The ranking is frozen at the cut by the scoring service; reporting serves it "
        "(`GET /v1/rankings?stage=published&publication=…`)"
    )


class KeyGranted(BaseModel):
    """A key granted or rotated: the secret is in this answer only."""

    model_config = ConfigDict(extra="allow")

    id: str
    secret: str
    roles: list[str]
    units: list[str]
    peer_groups: list[str]
    expires_at: str | None
    granted_by: str


class KeyEntry(BaseModel):
    """A key ever granted, with its state (never a secret)."""

    model_config = ConfigDict(extra="allow")

    id: str
    roles: list[str]
    units: list[str]
    peer_groups: list[str]
    expires_at: str | None
    granted_by: str
    granted_at: str
    granted_sequence: int
    revoked_at: str | None
    revoked_by: str | None
    revoke_reason: str | None


class KeyRevoked(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    revoked_by: str
    reason: str


class RefusedRow(BaseModel):
    """A refused row of a measurement set: its number (a file's row as the spreadsheet shows it, or the
    position in `rows` from 1), the field and what is wrong."""

    row: int
    field: str
    message: str


class MeasurementSetSummary(BaseModel):
    """The import summary of a measurement set: what it stored (or, in a dry run, would store)."""

    set_id: str | None = Field(description="Set when the set stored something")
    catalogue_id: str
    catalogue_version: str
    period: int
    mode: str = Field(description="atomic (all rows or none) or partial (the valid rows)")
    dry_run: bool
    stored: bool
    replayed: bool = False
    rows: int
    imported: int = Field(description="Components with no earlier self-assessment")
    replaced: int = Field(description="Corrections: a value different from the latest self-assessment")
    unchanged: int = Field(description="Rows equal to the latest self-assessment: nothing stored")
    refused: int = Field(description="Rows refused (each listed in `errors`)")
    errors: list[RefusedRow] = Field(description="The first 100 refusals; `errors_total` counts them all")
    errors_total: int
    first_sequence: int | None = None
    last_sequence: int | None = None
