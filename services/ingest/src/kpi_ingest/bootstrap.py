"""Composition root: everything ingest connects to is built here, at start, never at import."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kpi_common.auth import KeyRing, load_keys
from kpi_common.db import is_sqlite, make_engine, session_factory
from kpi_common.signing import Signer, load_or_create_signer
from kpi_core.commands import RegisterCatalogueVersion
from kpi_ingest.adapters.catalogue_files import bundled_catalogue_documents
from kpi_ingest.config import Settings
from kpi_ingest.entrypoints.outbox_relay import OutboxRelay
from kpi_ingest.service_layer import handlers
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
SYSTEM_ACTOR = "system"


@dataclass
class Ingest:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    write_lock: asyncio.Lock | None
    catalogues: CatalogueRegistry
    keys: KeyRing
    relay: OutboxRelay
    relay_task: asyncio.Task[None] | None = None
    signer: Signer | None = None

    def uow(self) -> UnitOfWork:
        """A new unit of work: one per request, never shared between concurrent tasks."""
        return UnitOfWork(self.sessions, self.write_lock, on_commit=self.relay.wake.set)

    async def check_database(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def check_nats(self) -> None:
        if self.relay.nats is None or not self.relay.nats.is_connected:
            raise ConnectionError("not connected to NATS")

    async def close(self) -> None:
        await self.relay.stop()
        if self.relay_task is not None:
            self.relay_task.cancel()
            await asyncio.gather(self.relay_task, return_exceptions=True)
        await self.engine.dispose()


async def bootstrap(settings: Settings) -> Ingest:
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    write_lock = asyncio.Lock() if is_sqlite(settings.database_url) else None
    ingest = Ingest(
        settings=settings,
        engine=engine,
        sessions=sessions,
        write_lock=write_lock,
        catalogues=CatalogueRegistry(),
        keys=load_keys(settings.api_keys_file),
        relay=OutboxRelay(
            sessions,
            settings.nats_url,
            batch=settings.relay_batch,
            replicas=settings.stream_replicas,
            write_lock=write_lock,
        ),
    )
    if settings.load_bundled_catalogues:
        for document in bundled_catalogue_documents():
            command = RegisterCatalogueVersion(document=document, registered_by=SYSTEM_ACTOR)
            await handlers.register_catalogue_version(command, ingest.uow(), ingest.catalogues, allow_existing=True)
    ingest.signer = load_or_create_signer(settings.checkpoint_key_file)
    ingest.relay_task = asyncio.create_task(ingest.relay.run(), name="outbox-relay")
    return ingest
