"""Helpers shared by the integration tests."""

from __future__ import annotations

import asyncio

from kpi_common.auth import KeyStore
from kpi_common.catalogue_store import CatalogueStore, PeerGroupStore
from kpi_core.commands import RecordMeasurement
from kpi_ingest.adapters.event_store import EventStore
from kpi_ingest.service_layer import handlers
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.units import RegistryCache
from kpi_reporting.adapters import orm as reporting_orm
from kpi_reporting.service_layer.projection import HistoryProjection

SOME_PROVINCES = ("gia-lai", "kon-tum", "da-nang", "binh-dinh", "ha-noi")


async def wait_until(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def record_some(uow_factory, registry: CatalogueRegistry, count: int, start: int = 0) -> None:  # type: ignore[no-untyped-def]
    for index in range(start, start + count):
        command = RecordMeasurement(
            catalogue_id="mini-dti",
            catalogue_version="1.0",
            period=2024,
            unit_id=SOME_PROVINCES[index % 5],
            indicator="3.1",
            inputs={"a": index, "b": 1000},
            idempotency_key=f"key-{index}",
            submitted_by="tester",
        )
        await handlers.record_measurement(command, uow_factory(), registry, RegistryCache())


async def outbox_size(sessions) -> int:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        return len(await EventStore(session).pending_outbox(10_000))


def reporting_history() -> HistoryProjection:
    """Reporting's log projection as its service builds it (pass `apply` and `finish_batch`)."""
    return HistoryProjection(
        CatalogueStore(reporting_orm.catalogues),
        PeerGroupStore(reporting_orm.peer_groups),
        KeyStore(reporting_orm.api_keys),
    )
