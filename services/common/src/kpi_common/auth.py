"""API keys: configured in a file that holds only their SHA-256 hashes, each bound to units and roles."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

Role = Literal["reporter", "evaluator", "approver", "auditor", "admin"]


class ApiKey(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    roles: tuple[Role, ...] = ("reporter",)
    units: tuple[str, ...] = ()

    def may_report_for(self, unit: str) -> bool:
        return "reporter" in self.roles and ("*" in self.units or unit in self.units)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret(key_id: str) -> str:
    return f"kpi_{key_id}_{secrets.token_urlsafe(24)}"


class KeyRing:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._by_hash = {key.sha256: key for key in keys}

    def authenticate(self, secret: str | None) -> ApiKey | None:
        if not secret:
            return None
        digest = hash_secret(secret)
        for known, key in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return key
        return None


def load_keys(path: Path) -> KeyRing:
    if not path.exists():
        return KeyRing([])
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return KeyRing([ApiKey.model_validate(item) for item in raw.get("keys", [])])


def add_key(path: Path, key_id: str, roles: list[str], units: list[str]) -> str:
    """Create a key, store its hash in the keys file and return the secret (shown once)."""
    secret = new_secret(key_id)
    raw = (yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None) or {"keys": []}
    raw["keys"] = [item for item in raw["keys"] if item["id"] != key_id]
    key = ApiKey(id=key_id, sha256=hash_secret(secret), roles=tuple(roles), units=tuple(units))
    raw["keys"].append(key.model_dump(mode="json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return secret
