"""API keys granted, rotated and revoked as events: the log says who granted what, when.

Each change appends its event and updates ingest's keys table in one transaction; scoring and
reporting apply the same event from the stream. Only a secret's SHA-256 is ever stored.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kpi_common.auth import ALL, KeyStore, hash_secret, new_secret
from kpi_core.commands import GrantKey, RevokeKey, RotateKey
from kpi_core.events import ApiKeyGranted, ApiKeyRevoked
from kpi_core.measurements import FieldError
from kpi_core.units import UnitRegistry
from kpi_ingest.adapters.orm import api_keys
from kpi_ingest.service_layer.errors import Conflict, InvalidKey, NotFound
from kpi_ingest.service_layer.unit_of_work import UnitOfWork

KEYS = KeyStore(api_keys)


def scope_errors(command: GrantKey, registry: UnitRegistry) -> list[FieldError]:
    """Units and peer groups a key is bound to must be registered ("*" for all); a reporter names its units."""
    errors: list[FieldError] = []
    unknown_units = [unit for unit in command.units if unit != ALL and registry.unit(unit) is None]
    if unknown_units:
        errors.append(FieldError("units", f"not a registered unit: {', '.join(unknown_units[:10])}"))
    unknown_groups = [group for group in command.peer_groups if group != ALL and registry.group(group) is None]
    if unknown_groups:
        errors.append(FieldError("peer_groups", f"not a registered peer group: {', '.join(unknown_groups[:10])}"))
    if "reporter" in command.roles and not command.units:
        errors.append(FieldError("units", "a reporter key names the units it reports for (or *)"))
    if command.expires_at is not None and command.expires_at <= datetime.now(UTC):
        errors.append(FieldError("expires_at", "already past"))
    return errors


async def grant_key(command: GrantKey, uow: UnitOfWork, registry: UnitRegistry) -> tuple[ApiKeyGranted, str]:
    """A new key: its event (with the secret's hash only) and the secret, shown once."""
    errors = scope_errors(command, registry)
    if errors:
        raise InvalidKey(f"key {command.key_id}: " + "; ".join(error.message for error in errors), errors)
    units = command.units if "reporter" in command.roles or command.units else (ALL,)
    secret = new_secret(command.key_id)
    async with uow.writing():
        await uow.events.lock()
        if await _current(uow, command.key_id) is not None:
            raise Conflict(
                f"key {command.key_id} exists (ids are never reused; rotate it for a new secret)",
                [FieldError("id", "taken")],
            )
        event = ApiKeyGranted(
            key_id=command.key_id,
            sha256=hash_secret(secret),
            roles=command.roles,
            units=units,
            peer_groups=command.peer_groups,
            expires_at=command.expires_at,
            granted_by=command.granted_by,
        )
        stored = await uow.events.append(event)
        await KEYS.apply(uow.session, event, stored.sequence, stored.envelope.time)
        await uow.commit()
    return event, secret


async def rotate_key(command: RotateKey, uow: UnitOfWork) -> tuple[ApiKeyGranted, str]:
    """A new secret for a key in force; the old secret stops working everywhere."""
    async with uow.writing():
        await uow.events.lock()
        current = await _current(uow, command.key_id)
        if current is None or current["revoked_at"] is not None:
            raise NotFound(f"no key {command.key_id} in force", [FieldError("key_id", "unknown or revoked")])
        secret = new_secret(command.key_id)
        expires = current["expires_at"]
        event = ApiKeyGranted(
            key_id=command.key_id,
            sha256=hash_secret(secret),
            roles=tuple(current["roles"]),  # type: ignore[arg-type]
            units=tuple(current["units"]),  # type: ignore[arg-type]
            peer_groups=tuple(current["peer_groups"]),  # type: ignore[arg-type]
            expires_at=datetime.fromisoformat(str(expires)) if expires else None,
            rotated=True,
            granted_by=command.rotated_by,
        )
        stored = await uow.events.append(event)
        await KEYS.apply(uow.session, event, stored.sequence, stored.envelope.time)
        await uow.commit()
    return event, secret


async def revoke_key(command: RevokeKey, uow: UnitOfWork) -> ApiKeyRevoked:
    async with uow.writing():
        await uow.events.lock()
        current = await _current(uow, command.key_id)
        if current is None or current["revoked_at"] is not None:
            raise NotFound(f"no key {command.key_id} in force", [FieldError("key_id", "unknown or already revoked")])
        event = ApiKeyRevoked(key_id=command.key_id, reason=command.reason, revoked_by=command.revoked_by)
        stored = await uow.events.append(event)
        await KEYS.apply(uow.session, event, stored.sequence, stored.envelope.time)
        await uow.commit()
    return event


async def _current(uow: UnitOfWork, key_id: str) -> dict[str, object] | None:
    return next((row for row in await KEYS.rows(uow.session) if row["id"] == key_id), None)
