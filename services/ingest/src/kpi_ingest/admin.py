"""Key administration straight on ingest's database, for the CLI: the same handlers as the HTTP
routes, so a key granted here is an event like any other and reaches every running service (the
running ingest's relay publishes it within a quarter of a second)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from kpi_common.db import make_engine, session_factory
from kpi_core.commands import GrantKey, RevokeKey, RotateKey
from kpi_core.units import UnitRegistry, parse_peer_group
from kpi_ingest.adapters.catalogue_files import bundled_peer_group_documents
from kpi_ingest.service_layer import keys
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_ingest.service_layer.units import RegistryCache

T = TypeVar("T")
CLI_ACTOR = "cli"


def _on_database(database_url: str, work: Callable[[Callable[[], UnitOfWork]], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = make_engine(database_url)
        sessions = session_factory(engine)
        try:
            return await work(lambda: UnitOfWork(sessions))
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def _registry(uow: UnitOfWork) -> UnitRegistry:
    """The registry in the log, with the bundled lists a first start has not registered yet."""
    async with uow:
        registry = await RegistryCache().get(uow)
    for document in bundled_peer_group_documents():
        if registry.group(str(document["id"])) is None:
            registry = registry.with_group(parse_peer_group(document))
    return registry


KeySpec = tuple[list[str], list[str], list[str], datetime | None]  # roles, units, peer groups, expiry


def grant_many(database_url: str, specs: dict[str, KeySpec]) -> dict[str, str]:
    """Grant keys (id -> roles, units, peer groups, expiry); returns each secret, shown once.
    Raises IngestError or pydantic's ValidationError, naming what was refused."""
    commands = [
        GrantKey.model_validate(
            {
                "key_id": key_id,
                "roles": roles,
                "units": units,
                "peer_groups": peer_groups,
                "expires_at": expires_at,
                "granted_by": CLI_ACTOR,
            }
        )
        for key_id, (roles, units, peer_groups, expires_at) in specs.items()
    ]

    async def work(uow: Callable[[], UnitOfWork]) -> dict[str, str]:
        registry = await _registry(uow())
        secrets: dict[str, str] = {}
        for command in commands:
            _, secrets[command.key_id] = await keys.grant_key(command, uow(), registry)
        return secrets

    return _on_database(database_url, work)


def grant(
    database_url: str,
    key_id: str,
    roles: list[str],
    units: list[str],
    peer_groups: list[str],
    expires_at: datetime | None = None,
) -> str:
    return grant_many(database_url, {key_id: (roles, units, peer_groups, expires_at)})[key_id]


def rotate(database_url: str, key_id: str) -> str:
    async def work(uow: Callable[[], UnitOfWork]) -> str:
        _, secret = await keys.rotate_key(RotateKey(key_id=key_id, rotated_by=CLI_ACTOR), uow())
        return secret

    return _on_database(database_url, work)


def revoke(database_url: str, key_id: str, reason: str) -> None:
    async def work(uow: Callable[[], UnitOfWork]) -> None:
        await keys.revoke_key(RevokeKey(key_id=key_id, reason=reason, revoked_by=CLI_ACTOR), uow())

    _on_database(database_url, work)


def key_count(database_url: str) -> int:
    async def work(uow: Callable[[], UnitOfWork]) -> int:
        async with uow() as unit_of_work:
            return len(await keys.KEYS.rows(unit_of_work.session))

    return _on_database(database_url, work)
