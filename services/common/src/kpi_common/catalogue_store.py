"""Catalogue versions and unit lists as a projection learns them from their registration events."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_common.db import insert_ignoring_duplicates
from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.events import CatalogueVersionRegistered, PeerGroupRegistered
from kpi_core.units import PeerGroup, UnitRegistry, parse_peer_group


def catalogue_table(metadata: MetaData) -> Table:
    return Table(
        "catalogues",
        metadata,
        Column("catalogue_id", String(100), primary_key=True),
        Column("version", String(50), primary_key=True),
        Column("content_sha256", String(64), nullable=False),
        Column("document", Text, nullable=False),
    )


class CatalogueStore:
    """Parsed catalogues cached in memory (a version never changes), the table as the truth."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._parsed: dict[tuple[str, str], Catalogue] = {}

    async def store(self, session: AsyncSession, event: CatalogueVersionRegistered) -> None:
        row = {
            "catalogue_id": event.catalogue_id,
            "version": event.version,
            "content_sha256": event.content_sha256,
            "document": json.dumps(event.document, ensure_ascii=False, sort_keys=True),
        }
        await insert_ignoring_duplicates(session, self._table, row)

    async def get(self, session: AsyncSession, catalogue_id: str, version: str) -> Catalogue | None:
        cached = self._parsed.get((catalogue_id, version))
        if cached is not None:
            return cached
        document = await session.scalar(
            select(self._table.c.document).where(
                self._table.c.catalogue_id == catalogue_id, self._table.c.version == version
            )
        )
        if document is None:
            return None
        catalogue = parse_catalogue(json.loads(document))
        self._parsed[(catalogue_id, version)] = catalogue
        return catalogue

    def peer_group_lookup(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> Callable[[str, str], Awaitable[str | None]]:
        """What the access policy asks: the peer group a catalogue version ranks (None if unknown)."""

        async def peer_group_of(catalogue_id: str, version: str) -> str | None:
            async with sessions() as session:
                catalogue = await self.get(session, catalogue_id, version)
            return catalogue.peer_group if catalogue else None

        return peer_group_of

    async def versions(self, session: AsyncSession) -> list[tuple[str, str]]:
        rows = await session.execute(
            select(self._table.c.catalogue_id, self._table.c.version).order_by("catalogue_id", "version")
        )
        return [(row.catalogue_id, row.version) for row in rows]


def peer_group_table(metadata: MetaData) -> Table:
    return Table(
        "peer_groups",
        metadata,
        Column("peer_group_id", String(100), primary_key=True),
        Column("version", String(50), primary_key=True),
        Column("sequence", BigInteger, nullable=False),
        Column("document", Text, nullable=False),
    )


class PeerGroupStore:
    """The unit registry as a projection learns it from PeerGroupRegistered events; the registry of a
    past moment is the latest version of each group registered up to that sequence."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._parsed: dict[tuple[str, str], PeerGroup] = {}

    async def store(self, session: AsyncSession, event: PeerGroupRegistered, sequence: int) -> None:
        row = {
            "peer_group_id": event.peer_group_id,
            "version": event.version,
            "sequence": sequence,
            "document": json.dumps(event.document, ensure_ascii=False, sort_keys=True),
        }
        await insert_ignoring_duplicates(session, self._table, row)

    async def registry(self, session: AsyncSession, up_to_sequence: int | None = None) -> UnitRegistry:
        query = select(self._table.c.peer_group_id, self._table.c.version, self._table.c.document).order_by(
            self._table.c.sequence
        )
        if up_to_sequence is not None:
            query = query.where(self._table.c.sequence <= up_to_sequence)
        registry = UnitRegistry()
        for row in await session.execute(query):
            key = (row.peer_group_id, row.version)
            if key not in self._parsed:
                self._parsed[key] = parse_peer_group(json.loads(row.document))
            registry = registry.with_group(self._parsed[key])
        return registry
