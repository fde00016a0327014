"""Catalogue versions as a projection learns them from CatalogueVersionRegistered events."""

from __future__ import annotations

import json

from sqlalchemy import Column, MetaData, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.db import insert_ignoring_duplicates
from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.events import CatalogueVersionRegistered


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

    async def versions(self, session: AsyncSession) -> list[tuple[str, str]]:
        rows = await session.execute(
            select(self._table.c.catalogue_id, self._table.c.version).order_by("catalogue_id", "version")
        )
        return [(row.catalogue_id, row.version) for row in rows]
