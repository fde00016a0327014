"""Registered catalogue versions, parsed once and kept in memory; the event log is the truth."""

from __future__ import annotations

from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.events import CatalogueVersionRegistered, decode_event
from kpi_ingest.service_layer.unit_of_work import UnitOfWork


class CatalogueRegistry:
    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str], Catalogue] = {}

    def remember(self, catalogue: Catalogue) -> None:
        self._parsed[(catalogue.id, catalogue.version)] = catalogue

    async def get(self, uow: UnitOfWork, catalogue_id: str, version: str) -> Catalogue | None:
        """From memory, or from the log when another ingest instance registered it."""
        cached = self._parsed.get((catalogue_id, version))
        if cached is not None:
            return cached
        found = await uow.events.catalogue_version(catalogue_id, version)
        if found is None:
            return None
        event = decode_event(found[1].envelope)
        assert isinstance(event, CatalogueVersionRegistered)
        catalogue = parse_catalogue(event.document)
        self.remember(catalogue)
        return catalogue
