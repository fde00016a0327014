"""The unit registry as ingest knows it: peer group registrations from the log, cached until a new one."""

from __future__ import annotations

import time

from kpi_core.commands import RegisterPeerGroup
from kpi_core.events import PeerGroupRegistered, decode_event
from kpi_core.measurements import FieldError
from kpi_core.units import PeerGroupInvalid, UnitRegistry, parse_peer_group
from kpi_ingest.adapters.event_store import StoredEvent
from kpi_ingest.service_layer.errors import Conflict, InvalidUnitList, version_taken
from kpi_ingest.service_layer.unit_of_work import UnitOfWork


class RegistryCache:
    """The registry in force; reread from the log only when another registration has committed
    (by this instance or another one on the same database)."""

    def __init__(self, recheck_seconds: float = 1.0) -> None:
        self._registry = UnitRegistry()
        self._head = -1
        self._checked_at = -recheck_seconds
        self._recheck_seconds = recheck_seconds

    def expire(self) -> None:
        """Read the log on the next request (this instance has just registered a list)."""
        self._checked_at = -self._recheck_seconds

    async def get(self, uow: UnitOfWork) -> UnitRegistry:
        """At most one look at the log per second (a registration reaches every instance within it),
        not one per request: the check sits on the path of every measurement."""
        now = time.monotonic()
        if now - self._checked_at < self._recheck_seconds:
            return self._registry
        self._checked_at = now
        head = await uow.events.peer_groups_head()
        if head != self._head:
            registry = UnitRegistry()
            for stored in await uow.events.peer_group_registrations():
                event = decode_event(stored.envelope)
                assert isinstance(event, PeerGroupRegistered)
                registry = registry.with_group(parse_peer_group(event.document))
            self._registry, self._head = registry, head
        return self._registry


async def register_peer_group(
    command: RegisterPeerGroup, uow: UnitOfWork, *, allow_existing: bool = False
) -> StoredEvent | None:
    """Register a version of a peer group's unit list; the same version never changes.
    Returns None when `allow_existing` and the same content is already registered."""
    try:
        group = parse_peer_group(command.document)
    except PeerGroupInvalid as invalid:
        raise InvalidUnitList(str(invalid), [FieldError("document", defect) for defect in invalid.defects]) from None
    content_sha256 = group.content_hash()
    async with uow.writing():
        await uow.events.lock()
        existing = await uow.events.peer_group_version(group.id, group.version)
        if existing is not None:
            if allow_existing and existing == content_sha256:
                return None
            raise version_taken(f"peer group {group.id} version {group.version}", existing == content_sha256, Conflict)
        event = PeerGroupRegistered(
            peer_group_id=group.id,
            version=group.version,
            content_sha256=content_sha256,
            document=group.document(),
            registered_by=command.registered_by,
        )
        stored = await uow.events.append(event)
        await uow.events.record_peer_group_version(group.id, group.version, content_sha256, stored.sequence)
        await uow.commit()
    return stored
