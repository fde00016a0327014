"""API keys as every service knows them: learnt from the key events of the log, never from a file.

Ingest writes its `api_keys` table in the transaction that appends a key event; scoring and
reporting write theirs when they apply the event from the stream. Each service reads the table
into a `KeyRing` at most once a second (and again before refusing a key it does not know), so a
grant or a revocation reaches every instance of every service within about a second.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_common.db import upsert
from kpi_core.events import ApiKeyGranted, ApiKeyRevoked, Role

KEY_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
ALL = "*"


class ApiKey(BaseModel):
    """A key in force: who it is, what it may do and where."""

    model_config = ConfigDict(frozen=True)

    id: str
    sha256: str
    roles: tuple[Role, ...]
    units: tuple[str, ...] = ()
    peer_groups: tuple[str, ...] = (ALL,)
    expires_at: datetime | None = None

    def has_role(self, *roles: str) -> bool:
        return bool(set(roles) & set(self.roles))

    def covers_unit(self, unit: str) -> bool:
        return ALL in self.units or unit in self.units

    def covers_peer_group(self, peer_group: str) -> bool:
        return ALL in self.peer_groups or peer_group in self.peer_groups

    def may_report_for(self, unit: str) -> bool:
        return "reporter" in self.roles and self.covers_unit(unit)

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


RANDOM_PART = 32  # characters of secrets.token_urlsafe(24), which may themselves hold "_" and "-"


def new_secret(key_id: str) -> str:
    return f"kpi_{key_id}_{secrets.token_urlsafe(24)}"


def secret_prefix(secret: str) -> str:
    """What may be logged of a presented secret: its `kpi_<id>` part, never any of the random part
    (cut by length, not at an underscore: the random part can contain one)."""
    if secret.startswith("kpi_") and len(secret) > len("kpi_") + RANDOM_PART + 1 and len(secret) < 200:
        return secret[: -(RANDOM_PART + 1)][:80]
    return secret[:4] + "…"


class KeyRing:
    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys

    def authenticate(self, secret: str, now: datetime | None = None) -> ApiKey | None:
        """The key a secret belongs to if it is in force; every stored hash is compared in constant time."""
        digest = hash_secret(secret)
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.sha256, digest):
                found = key
        if found is None or found.expired(now or datetime.now(UTC)):
            return None
        return found


def api_key_table(metadata: MetaData) -> Table:
    return Table(
        "api_keys",
        metadata,
        Column("key_id", String(100), primary_key=True),
        Column("sha256", String(64), nullable=False),
        Column("roles", Text, nullable=False),
        Column("units", Text, nullable=False),
        Column("peer_groups", Text, nullable=False),
        Column("expires_at", String(32), nullable=True),
        Column("granted_by", String(100), nullable=False),
        Column("granted_at", String(32), nullable=False),
        Column("granted_sequence", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
        Column("revoked_at", String(32), nullable=True),
        Column("revoked_by", String(100), nullable=True),
        Column("revoke_reason", Text, nullable=True),
    )


class KeyStore:
    """The keys table: the state the key events left, one row per key id."""

    def __init__(self, table: Table) -> None:
        self.table = table

    async def apply(
        self, session: AsyncSession, event: ApiKeyGranted | ApiKeyRevoked, sequence: int, recorded_at: datetime
    ) -> None:
        at = recorded_at.isoformat()
        if isinstance(event, ApiKeyRevoked):
            await session.execute(
                self.table.update()
                .where(self.table.c.key_id == event.key_id)
                .values(revoked_at=at, revoked_by=event.revoked_by, revoke_reason=event.reason)
            )
            return
        row = {
            "key_id": event.key_id,
            "sha256": event.sha256,
            "roles": json.dumps(list(event.roles)),
            "units": json.dumps(list(event.units)),
            "peer_groups": json.dumps(list(event.peer_groups)),
            "expires_at": event.expires_at.isoformat() if event.expires_at else None,
            "granted_by": event.granted_by,
            "granted_at": at,
            "granted_sequence": sequence,
            "revoked_at": None,
            "revoked_by": None,
            "revoke_reason": None,
        }
        await upsert(session, self.table, [row], ["key_id"])

    async def rows(self, session: AsyncSession) -> list[dict[str, object]]:
        """Every key ever granted, with its state (never a secret: there is none to show)."""
        result = await session.execute(select(self.table).order_by(self.table.c.granted_sequence))
        return [
            {
                "id": row.key_id,
                "roles": json.loads(row.roles),
                "units": json.loads(row.units),
                "peer_groups": json.loads(row.peer_groups),
                "expires_at": row.expires_at,
                "granted_by": row.granted_by,
                "granted_at": row.granted_at,
                "granted_sequence": row.granted_sequence,
                "revoked_at": row.revoked_at,
                "revoked_by": row.revoked_by,
                "revoke_reason": row.revoke_reason,
            }
            for row in result
        ]

    async def ring(self, session: AsyncSession) -> KeyRing:
        result = await session.execute(select(self.table).where(self.table.c.revoked_at.is_(None)))
        return KeyRing(
            [
                ApiKey(
                    id=row.key_id,
                    sha256=row.sha256,
                    roles=tuple(json.loads(row.roles)),
                    units=tuple(json.loads(row.units)),
                    peer_groups=tuple(json.loads(row.peer_groups)),
                    expires_at=datetime.fromisoformat(row.expires_at) if row.expires_at else None,
                )
                for row in result
            ]
        )


class KeyCache:
    """A service's key ring, read from its keys table at most once a second; a secret it does not
    know makes it look again (at most five times a second) before refusing, so a key granted a
    moment ago works at once."""

    def __init__(
        self,
        store: KeyStore,
        sessions: async_sessionmaker[AsyncSession],
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store, self._sessions, self._max_age, self._clock = store, sessions, max_age, clock
        self._ring = KeyRing([])
        self._read_at = float("-inf")

    async def _reread(self) -> None:
        async with self._sessions() as session:
            self._ring = await self._store.ring(session)
        self._read_at = self._clock()

    async def authenticate(self, secret: str) -> ApiKey | None:
        age = self._clock() - self._read_at
        if age >= self._max_age:
            await self._reread()
        key = self._ring.authenticate(secret)
        if key is None and self._clock() - self._read_at >= 0.2:
            await self._reread()
            key = self._ring.authenticate(secret)
        return key

    def expire(self) -> None:
        self._read_at = float("-inf")
