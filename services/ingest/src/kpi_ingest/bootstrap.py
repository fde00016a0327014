"""Composition root: everything ingest connects to is built here, at start, never at import."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kpi_common.auth import KeyCache
from kpi_common.checkpoints import WalCheckpointer, background_checkpoints
from kpi_common.db import is_sqlite, make_engine, session_factory
from kpi_common.failure_limits import FailureLimiter
from kpi_common.signing import Signer, load_or_create_signer
from kpi_core.commands import RegisterCatalogueVersion, RegisterPeerGroup
from kpi_ingest.adapters.catalogue_files import bundled_catalogue_documents, bundled_peer_group_documents
from kpi_ingest.config import Settings
from kpi_ingest.entrypoints.outbox_relay import OutboxRelay
from kpi_ingest.service_layer import handlers
from kpi_ingest.service_layer.catalogues import CatalogueRegistry
from kpi_ingest.service_layer.errors import IngestError
from kpi_ingest.service_layer.keys import KEYS
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_ingest.service_layer.units import RegistryCache, register_peer_group

log = logging.getLogger(__name__)
SYSTEM_ACTOR = "system"


@dataclass
class Ingest:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    write_lock: asyncio.Lock | None
    catalogues: CatalogueRegistry
    units: RegistryCache
    keys: KeyCache
    auth_failures: FailureLimiter
    relay: OutboxRelay
    relay_task: asyncio.Task[None] | None = None
    checkpoints: WalCheckpointer | None = None
    signer: Signer | None = None
    tampered_at: int | None = None  # the first stored event found not to match its hash, if any

    async def check_integrity(self) -> None:
        """Ready only while no event read has failed its hash (an edited log is not served)."""
        if self.tampered_at is not None:
            raise RuntimeError(f"the stored event {self.tampered_at} does not match its hash: run kpi-ledger verify")

    def uow(self) -> UnitOfWork:
        """A new unit of work: one per request, never shared between concurrent tasks."""
        return UnitOfWork(self.sessions, self.write_lock, on_commit=self.relay.wake.set)

    async def check_database(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def peer_group_of(self, catalogue_id: str, version: str) -> str | None:
        async with self.uow() as uow:
            catalogue = await self.catalogues.get(uow, catalogue_id, version)
        return catalogue.peer_group if catalogue else None

    async def check_nats(self) -> None:
        if self.relay.nats is None or not self.relay.nats.is_connected:
            async with self.uow() as uow:
                waiting = await uow.events.outbox_size()
            raise ConnectionError(f"not connected to NATS; {waiting} events wait in the outbox")

    async def close(self) -> None:
        await self.relay.stop()
        if self.relay_task is not None:
            self.relay_task.cancel()
            await asyncio.gather(self.relay_task, return_exceptions=True)
        if self.checkpoints is not None:
            await self.checkpoints.close(self.engine)
        else:
            await self.engine.dispose()


async def bootstrap(settings: Settings) -> Ingest:
    checkpoints = background_checkpoints(settings.database_url)
    engine = make_engine(settings.database_url, autocheckpoint=checkpoints is None)
    sessions = session_factory(engine)
    write_lock = asyncio.Lock() if is_sqlite(settings.database_url) else None
    ingest = Ingest(
        settings=settings,
        engine=engine,
        checkpoints=checkpoints,
        sessions=sessions,
        write_lock=write_lock,
        catalogues=CatalogueRegistry(),
        units=RegistryCache(),
        keys=KeyCache(KEYS, sessions),
        auth_failures=FailureLimiter(settings.auth_failures_per_minute),
        relay=OutboxRelay(
            sessions,
            settings.nats_url,
            batch=settings.relay_batch,
            replicas=settings.stream_replicas,
            write_lock=write_lock,
        ),
    )
    if checkpoints is not None:
        checkpoints.start()
    if settings.load_bundled_catalogues:
        await _register_bundled(ingest)
    ingest.signer = load_or_create_signer(settings.checkpoint_key_file)
    ingest.relay_task = asyncio.create_task(ingest.relay.run(), name="outbox-relay")
    return ingest


async def _register_bundled(ingest: Ingest) -> None:
    """Register the official unit lists and catalogues; a bundled file that differs from the version
    already registered under its number leaves the registered one in force (the log is the truth)."""
    for units in bundled_peer_group_documents():
        try:
            command = RegisterPeerGroup(document=units, registered_by=SYSTEM_ACTOR)
            await register_peer_group(command, ingest.uow(), allow_existing=True)
        except IngestError as refused:
            log.warning("bundled unit list %s@%s not registered: %s", units.get("id"), units.get("version"), refused)
    for document in bundled_catalogue_documents():
        try:
            catalogue_command = RegisterCatalogueVersion(document=document, registered_by=SYSTEM_ACTOR)
            await handlers.register_catalogue_version(
                catalogue_command, ingest.uow(), ingest.catalogues, allow_existing=True
            )
        except IngestError as refused:
            log.warning(
                "bundled catalogue %s@%s not registered: %s", document.get("id"), document.get("version"), refused
            )
