"""The append-only event log: append with a gap-free sequence, read back in order."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from json.encoder import encode_basestring

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.bulk_writes import write_rows
from kpi_common.db import insert_ignoring_duplicates
from kpi_common.logs import request_id
from kpi_common.relay import Pending
from kpi_common.subjects import event_subject
from kpi_core.audit import chain_sha256, event_sha256
from kpi_core.events import (
    EVENT_SOURCE,
    DomainEvent,
    EventEnvelope,
    EventWithheld,
    MeasurementRecorded,
    RequestAttributes,
    idempotency_key_sha256,
    index_of,
)
from kpi_ingest.adapters.orm import (
    catalogue_versions,
    event_counter,
    events,
    outbox,
    peer_group_versions,
    withheld_events,
)

APPEND_CHUNK = 2000  # events per insert statement of a batch append
ChainRow = tuple[int, bytes, str | None, str | None, dict[str, str | None]]
EVENT_COLUMNS = (
    *("sequence", "event_id", "type", "subject", "catalogue_id", "unit_id", "recorded_at", "actor"),
    *("idempotency_key", "request_sha256", "envelope", "event_sha256", "chain_sha256"),
)
OUTBOX_COLUMNS = ("sequence", "nats_subject")
# what `json.dumps(..., ensure_ascii=False, separators=(",", ":"))` builds on every call, built once
# (the same options, so the same text); a string is written as that encoder writes one
JSON_TEXT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# Events whose fields are text, whole numbers, booleans, nulls and lists of those (no float, no
# date): pydantic writes their JSON exactly as `JSON_TEXT` writes their `model_dump(mode="json")`,
# character for character (the same escapes; a test compares the two on random text), four times faster
SAME_JSON = (MeasurementRecorded,)
UUID7_VERSION = bytes(byte & 0x0F | 0x70 for byte in range(256))  # byte 6 of a version 7 UUID
UUID_VARIANT = bytes(byte & 0x3F | 0x80 for byte in range(256))  # byte 8: the RFC 9562 variant


@dataclass(frozen=True)
class StoredEvent:
    envelope: EventEnvelope
    request_sha256: str | None = None

    @property
    def sequence(self) -> int:
        return self.envelope.sequence


class EventTampered(RuntimeError):
    """A stored event does not match its own hash: the database was edited after the append."""

    def __init__(self, sequence: int) -> None:
        super().__init__(f"the stored event {sequence} does not match its hash")
        self.sequence = sequence


def _stored(row: object) -> StoredEvent:
    """A stored event with the request hash it was stored under: its envelope's, where it records it
    (hashed, so an edit of the column changes nothing a retry is answered), else the column's."""
    envelope = EventEnvelope.model_validate_json(row.envelope)  # type: ignore[attr-defined]
    return StoredEvent(envelope, envelope.requestsha256 or row.request_sha256)  # type: ignore[attr-defined]


def canonical_envelope(
    event: DomainEvent, event_id: str, sequence: int, shown_time: str, request: RequestAttributes | None = None
) -> bytes:
    """The bytes `envelope_for(...).to_bytes()` gives, without building and validating an envelope
    model per event (a batch append's hot path; a test keeps the two byte for byte equal)."""
    return EnvelopeWriter(shown_time, request).text(event, event_id, sequence, event.subject()).encode("utf-8")


class EnvelopeWriter:
    """The canonical text of a batch's envelopes: the text `json.dumps` writes for the envelope
    `canonical_envelope` describes, with what every envelope of the batch shares (its time, the
    request's attributes, the fields an event type fixes) written once; per event, its id, subject,
    sequence and data."""

    def __init__(self, shown_time: str, request: RequestAttributes | None = None) -> None:
        self.shown_time = shown_time
        attributes = request.shown() if request is not None else {}
        self.request = "".join(
            f",{encode_basestring(name)}:{encode_basestring(value)}" for name, value in attributes.items()
        )
        self.by_type: dict[str, tuple[str, str]] = {}

    def _of_type(self, event_type: str) -> tuple[str, str]:
        """The text between the id and the subject, and between the subject and the sequence."""
        found = self.by_type.get(event_type)
        if found is None:
            found = self.by_type[event_type] = (
                f',"source":{encode_basestring(EVENT_SOURCE)},"type":{encode_basestring(event_type)},"subject":',
                f',"time":{encode_basestring(self.shown_time)},"datacontenttype":"application/json",'
                f'"dataschema":{encode_basestring(f"/v1/schemas/{event_type}")},"sequence":',
            )
        return found

    def text(self, event: DomainEvent, event_id: str, sequence: int, subject: str) -> str:
        """The envelope's text; `subject` is the event's `subject()` (its caller has it already)."""
        before_subject, before_sequence = self._of_type(event.type)
        if isinstance(event, SAME_JSON):
            data = event.model_dump_json()
        else:
            data = JSON_TEXT.encode(event.model_dump(mode="json"))
        return (
            f'{{"specversion":"1.0","id":{encode_basestring(event_id)}{before_subject}'
            f"{encode_basestring(subject)}{before_sequence}{int(sequence)!r}{self.request}"
            f',"data":{data}}}'
        )


def event_ids(count: int, recorded_at: datetime) -> list[str]:
    """`count` UUIDs of version 7 (RFC 9562): the first 48 bits are `recorded_at` in Unix
    milliseconds, the other 74 random bits, from one read of the system's randomness. New ids sort
    after the log's earlier ones, so the unique index on `event_id` grows at its end, as the
    sequence's does: a random id (version 4) lands on a random page of that index, and once the
    index outgrows SQLite's page cache each insert reads a page from the file."""
    raw = bytearray(os.urandom(16 * count))
    milliseconds = (int(recorded_at.timestamp() * 1000)).to_bytes(6, "big")
    for place, byte in enumerate(milliseconds):
        raw[place::16] = bytes((byte,)) * count
    raw[6::16] = raw[6::16].translate(UUID7_VERSION)
    raw[8::16] = raw[8::16].translate(UUID_VARIANT)
    hexed = raw.hex()
    return [
        f"{hexed[at : at + 8]}-{hexed[at + 8 : at + 12]}-{hexed[at + 12 : at + 16]}-"
        f"{hexed[at + 16 : at + 20]}-{hexed[at + 20 : at + 32]}"
        for at in range(0, 32 * count, 32)
    ]


@dataclass(frozen=True)
class _ChunkRows:
    """A chunk of an append as inserted: its event rows, its outbox rows, the chain hash it ends on
    and its last envelope's text."""

    events: list[tuple[object, ...]]
    outbox: list[tuple[object, ...]]
    chained: str
    text: str


def _chunk_rows(
    writer: EnvelopeWriter,
    recorded_at: datetime,
    at: str,
    keyed: tuple[str | None, str | None],
    part: Sequence[DomainEvent],
    first_sequence: int,
    chained: str,
) -> _ChunkRows:
    """The rows of `part`, the events given the sequences from `first_sequence` on, chained after `chained`."""
    rows: list[tuple[object, ...]] = []
    subjects: list[tuple[object, ...]] = []
    text = ""
    sequences = range(first_sequence, first_sequence + len(part))
    for sequence, event, event_id in zip(sequences, part, event_ids(len(part), recorded_at), strict=True):
        index, subject = index_of(event), event.subject()
        text = writer.text(event, event_id, sequence, subject)
        digest = event_sha256(text.encode("utf-8"))
        chained = chain_sha256(chained, digest)
        rows.append(
            (
                *(sequence, event_id, event.type, subject, index.catalogue_id, index.unit_id, at),
                *(index.actor or "", *keyed, text, digest, chained),
            )
        )
        subjects.append((sequence, event_subject(event)))
    return _ChunkRows(rows, subjects, chained, text)


def _shown_time(recorded_at: datetime) -> str:
    """An envelope's `time` as the envelope model writes it."""
    envelope = EventEnvelope(id="", type="", subject="", time=recorded_at, dataschema="", sequence=0, data={})
    return str(envelope.model_dump(mode="json")["time"])


# statements of every append, built once: building one costs more than running it on SQLite
LOCK_COUNTER = (
    update(event_counter)
    .where(event_counter.c.id == 1)
    .values(last_sequence=event_counter.c.last_sequence)
    .returning(event_counter.c.last_sequence, event_counter.c.last_chain_sha256)
)
MOVE_COUNTER = (
    update(event_counter)
    .where(event_counter.c.id == 1)
    .values(last_sequence=bindparam("to_sequence"), last_chain_sha256=bindparam("to_chain"))
)
BY_IDEMPOTENCY_KEY = select(events.c.sequence, events.c.envelope, events.c.request_sha256, events.c.event_sha256).where(
    events.c.actor == bindparam("actor"), events.c.idempotency_key == bindparam("key")
)

PENDING_OUTBOX = (
    select(outbox.c.sequence, outbox.c.nats_subject, events.c.event_id, events.c.envelope)
    .join(events, events.c.sequence == outbox.c.sequence)
    .order_by(outbox.c.sequence)
    .limit(bindparam("limit"))
)


class EventStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        # the transaction that locked the counter, and the head it read or last moved it to
        self._head: tuple[object, int, str] | None = None

    async def append(
        self,
        event: DomainEvent,
        *,
        idempotency_key: str | None = None,
        request_sha256: str | None = None,
    ) -> StoredEvent:
        """Append one event and its outbox row (`append_many` of one, which says how). The columns
        beside the envelope (unit, catalogue, actor) are derived from the event (`index_of`); the
        envelope records the request being handled (its id, the hashes of its key and body)."""
        request = RequestAttributes.of(request_id.get(), idempotency_key, request_sha256)
        text = await self._append([event], request, APPEND_CHUNK, (idempotency_key, request_sha256))
        return StoredEvent(EventEnvelope.model_validate_json(text), request_sha256)

    async def append_many(
        self, batch: Sequence[DomainEvent], request: RequestAttributes | None = None, chunk: int = APPEND_CHUNK
    ) -> range:
        """Append events in one go: the events and their outbox rows inserted `chunk` at a time, then
        one move of the counter for the whole batch. Each event has its own sequence, hash and chain
        link, exactly as appending them one at a time would have given; each envelope records
        `request` (a set's, see `kpi_core.set_proof`; by default the request id alone). Returns the
        sequences given."""
        if not batch:
            return range(0)
        head, _ = await self._locked_head()
        # a set's key is its record's, not an event's
        await self._append(batch, request or RequestAttributes.of(request_id.get()), chunk, (None, None))
        return range(head + 1, head + 1 + len(batch))

    async def _append(
        self,
        batch: Sequence[DomainEvent],
        request: RequestAttributes,
        chunk: int,
        keyed: tuple[str | None, str | None],
    ) -> str:
        """Write the batch after the head this transaction locked; the last envelope's text.

        The rows of the next `chunk` are built on a worker thread while the database inserts this
        one: sqlite3 lets go of the GIL while SQLite runs a statement (and asyncpg waits on its
        socket), so the envelopes, ids and hashes of a large set are made in that time instead of
        after it. The chain runs through the chunks in order: each is built from the hash the one
        before ended on."""
        last, chained = await self._locked_head()
        recorded_at = datetime.now(UTC)
        build = partial(
            _chunk_rows,
            EnvelopeWriter(_shown_time(recorded_at), request),
            recorded_at,
            recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            keyed,
        )
        starts = range(0, len(batch), chunk)
        built = build(batch[:chunk], last + 1, chained)
        loop = asyncio.get_running_loop()
        for start in starts:
            following = start + chunk
            next_built = (
                loop.run_in_executor(
                    None, build, batch[following : following + chunk], last + 1 + following, built.chained
                )
                if following < len(batch)
                else None
            )
            try:
                await write_rows(self.session, events, EVENT_COLUMNS, built.events)
                await write_rows(self.session, outbox, OUTBOX_COLUMNS, built.outbox)
            except BaseException:
                if next_built is not None:
                    next_built.cancel()
                raise
            if next_built is not None:
                built = await next_built
        moved = last + len(batch)
        await self.session.execute(MOVE_COUNTER, {"to_sequence": moved, "to_chain": built.chained})
        self._head = (self.session.sync_session.get_transaction(), moved, built.chained)
        return built.text

    async def lock(self) -> None:
        """Take the append lock now, before reading what an append depends on: a no-op write on the
        counter row, which also reads the head the transaction's appends come after."""
        row = (await self.session.execute(LOCK_COUNTER)).one()
        self._head = (self.session.sync_session.get_transaction(), int(row[0]), str(row[1]))

    async def _locked_head(self) -> tuple[int, str]:
        """The sequence and chain hash this transaction appends after, locking the counter if it has not yet."""
        if self._head is None or self._head[0] is not self.session.sync_session.get_transaction():
            await self.lock()
        assert self._head is not None
        return self._head[1], self._head[2]

    async def chain_head(self) -> tuple[int, str]:
        row = (
            await self.session.execute(select(event_counter.c.last_sequence, event_counter.c.last_chain_sha256))
        ).one()
        return int(row.last_sequence), str(row.last_chain_sha256)

    async def chain_rows(self, after: int, limit: int) -> list[ChainRow]:
        """Stored rows as the chain verifier reads them: sequence, canonical bytes, stored hashes, and the
        columns kept beside the envelope."""
        columns = (
            *("event_id", "type", "subject", "recorded_at", "catalogue_id", "unit_id", "actor"),
            *("idempotency_key", "request_sha256"),  # what a retried request is answered by
        )
        rows = await self.session.execute(
            select(
                events.c.sequence,
                events.c.envelope,
                events.c.event_sha256,
                events.c.chain_sha256,
                *(events.c[name] for name in columns),
            )
            .where(events.c.sequence > after)
            .order_by(events.c.sequence)
            .limit(limit)
        )
        return [
            (
                row.sequence,
                row.envelope.encode("utf-8"),
                row.event_sha256,
                row.chain_sha256,
                {name: getattr(row, name) for name in columns},
            )
            for row in rows
        ]

    async def of_type(self, event_type: str) -> list[StoredEvent]:
        rows = await self.session.execute(
            select(events.c.envelope, events.c.request_sha256)
            .where(events.c.type == event_type)
            .order_by(events.c.sequence)
        )
        return [_stored(row) for row in rows]

    async def by_idempotency_key(self, actor: str, key: str) -> StoredEvent | None:
        """The event stored under this actor's key. One whose row does not match its hash, or whose
        envelope records another key (its key column was edited), is never answered (`EventTampered`)."""
        row = (await self.session.execute(BY_IDEMPOTENCY_KEY, {"actor": actor, "key": key})).first()
        if row is None:
            return None
        stored = _stored(row)
        recorded = stored.envelope.idempotencykeysha256
        untrue = row.event_sha256 is not None and event_sha256(row.envelope.encode("utf-8")) != row.event_sha256
        if untrue or (recorded is not None and recorded != idempotency_key_sha256(key)):
            raise EventTampered(row.sequence)
        return stored

    async def read_after(
        self,
        after: int,
        limit: int,
        *,
        event_type: str | None = None,
        catalogue_id: str | None = None,
        unit_id: str | None = None,
    ) -> list[StoredEvent]:
        """Events after a sequence, in order; the log has no gaps, so a cursor never passes over one.
        Each is checked against its stored hash as it is read: an event edited in the database is
        never served as if it were the one recorded (`EventTampered`)."""
        query = select(events.c.sequence, events.c.envelope, events.c.request_sha256, events.c.event_sha256)
        query = query.where(events.c.sequence > after)
        for column, value in (
            (events.c.type, event_type),
            (events.c.catalogue_id, catalogue_id),
            (events.c.unit_id, unit_id),
        ):
            if value is not None:
                query = query.where(column == value)
        rows = (await self.session.execute(query.order_by(events.c.sequence).limit(limit))).all()
        for row in rows:
            if row.event_sha256 is not None and event_sha256(row.envelope.encode("utf-8")) != row.event_sha256:
                raise EventTampered(row.sequence)
        return [_stored(row) for row in rows]

    async def page(self, after: int, limit: int, **filters: str | None) -> tuple[list[StoredEvent], int]:
        """A page of events after a cursor and the cursor to resume from.

        Nothing can commit below the head later (appends commit in sequence order), so a short
        filtered page moves the cursor to the head without passing over a future match."""
        head = await self.head()
        found = await self.read_after(after, limit, **filters)
        last = found[-1].sequence if found else after
        return found, last if len(found) == limit else max(head, last, after)

    async def head(self) -> int:
        """The last committed sequence."""
        return int(await self.session.scalar(select(func.coalesce(func.max(events.c.sequence), 0))) or 0)

    async def pending_outbox(self, limit: int) -> list[Pending]:
        """The first events waiting for the relay, as stored: the bytes published are the log's own."""
        rows = await self.session.execute(PENDING_OUTBOX, {"limit": limit})
        return [Pending(row.sequence, row.nats_subject, row.event_id, row.envelope.encode("utf-8")) for row in rows]

    async def previous_event_id(self, sequence: int) -> str | None:
        """The id of the event stored just before `sequence` (None before the first)."""
        found = await self.session.scalar(select(events.c.event_id).where(events.c.sequence == sequence - 1))
        return str(found) if found is not None else None

    async def outbox_size(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(outbox)) or 0)

    async def mark_published(self, up_to_sequence: int) -> None:
        await self.session.execute(delete(outbox).where(outbox.c.sequence <= up_to_sequence))

    async def record_withheld(self, withheld: EventWithheld) -> None:
        """Record an event the relay withholds from the stream (once: a second record is ignored)."""
        row = {
            "sequence": withheld.sequence,
            "event_id": withheld.event_id,
            "type": withheld.event_type,
            "nats_subject": withheld.nats_subject,
            "size": withheld.size,
            "event_sha256": withheld.event_sha256,
            "reason": withheld.reason,
            "withheld_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        await insert_ignoring_duplicates(self.session, withheld_events, row)

    async def withheld(self, after: int = 0, limit: int | None = None) -> list[dict[str, object]]:
        """The events withheld from the stream, in sequence order (after a sequence, at most `limit`)."""
        query = select(withheld_events).where(withheld_events.c.sequence > after).order_by(withheld_events.c.sequence)
        rows = await self.session.execute(query.limit(limit) if limit is not None else query)
        return [dict(row._mapping) for row in rows]

    async def withheld_digests(self, low: int, high: int) -> dict[int, str]:
        """sequence -> the SHA-256 recorded for each event withheld between two sequences (inclusive)."""
        rows = await self.session.execute(
            select(withheld_events.c.sequence, withheld_events.c.event_sha256).where(
                withheld_events.c.sequence >= low, withheld_events.c.sequence <= high
            )
        )
        return {int(row.sequence): str(row.event_sha256) for row in rows}

    async def record_catalogue_version(
        self, catalogue_id: str, version: str, content_sha256: str, sequence: int
    ) -> None:
        await self.session.execute(
            insert(catalogue_versions).values(
                catalogue_id=catalogue_id, version=version, content_sha256=content_sha256, sequence=sequence
            )
        )

    async def catalogue_version(self, catalogue_id: str, version: str) -> tuple[str, StoredEvent] | None:
        row = (
            await self.session.execute(
                select(catalogue_versions.c.content_sha256, events.c.envelope, events.c.request_sha256)
                .join(events, events.c.sequence == catalogue_versions.c.sequence)
                .where(catalogue_versions.c.catalogue_id == catalogue_id, catalogue_versions.c.version == version)
            )
        ).first()
        return (row.content_sha256, _stored(row)) if row else None

    async def catalogue_versions(self) -> list[tuple[str, str, str]]:
        rows = await self.session.execute(
            select(
                catalogue_versions.c.catalogue_id, catalogue_versions.c.version, catalogue_versions.c.content_sha256
            ).order_by(catalogue_versions.c.catalogue_id, catalogue_versions.c.version)
        )
        return [(row.catalogue_id, row.version, row.content_sha256) for row in rows]

    async def record_peer_group_version(
        self, peer_group_id: str, version: str, content_sha256: str, sequence: int
    ) -> None:
        await self.session.execute(
            insert(peer_group_versions).values(
                peer_group_id=peer_group_id, version=version, content_sha256=content_sha256, sequence=sequence
            )
        )

    async def peer_group_version(self, peer_group_id: str, version: str) -> str | None:
        """The content hash a registered peer group version has, if it is registered."""
        found = await self.session.scalar(
            select(peer_group_versions.c.content_sha256).where(
                peer_group_versions.c.peer_group_id == peer_group_id, peer_group_versions.c.version == version
            )
        )
        return str(found) if found is not None else None

    async def peer_groups_head(self) -> int:
        """The sequence of the last peer group registration (0 if none): what a cached registry is valid for."""
        return int(await self.session.scalar(select(func.coalesce(func.max(peer_group_versions.c.sequence), 0))) or 0)

    async def peer_group_registrations(self) -> list[StoredEvent]:
        """The registration event in force for each peer group (its latest), in sequence order."""
        latest = (
            select(func.max(peer_group_versions.c.sequence).label("sequence"))
            .group_by(peer_group_versions.c.peer_group_id)
            .subquery()
        )
        rows = await self.session.execute(
            select(events.c.envelope, events.c.request_sha256)
            .join(latest, latest.c.sequence == events.c.sequence)
            .order_by(events.c.sequence)
        )
        return [_stored(row) for row in rows]

    async def registered_versions(self) -> dict[tuple[str, str, str], tuple[str, int]]:
        """The catalogue versions and unit lists as their tables hold them (what verification compares
        with the log): (kind, id, version) -> (content hash, the sequence of the registration)."""
        found: dict[tuple[str, str, str], tuple[str, int]] = {}
        for row in await self.session.execute(select(catalogue_versions)):
            found[("catalogue", row.catalogue_id, row.version)] = (row.content_sha256, int(row.sequence))
        for row in await self.session.execute(select(peer_group_versions)):
            found[("units", row.peer_group_id, row.version)] = (row.content_sha256, int(row.sequence))
        return found

    async def outbox_sequences(self) -> list[int]:
        """The events still waiting for the relay, in order."""
        return [
            int(sequence)
            for sequence in await self.session.scalars(select(outbox.c.sequence).order_by(outbox.c.sequence))
        ]

    async def outbox_rows(self) -> list[tuple[int, str, EventEnvelope]]:
        """The events still waiting for the relay, in order, with the subject each will be published on."""
        rows = await self.session.execute(
            select(outbox.c.sequence, outbox.c.nats_subject, events.c.envelope)
            .join(events, events.c.sequence == outbox.c.sequence)
            .order_by(outbox.c.sequence)
        )
        return [(int(row.sequence), row.nats_subject, EventEnvelope.model_validate_json(row.envelope)) for row in rows]
