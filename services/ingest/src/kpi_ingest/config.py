"""Ingest settings: environment variables prefixed KPI_INGEST_."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

SET_MAX_ROWS = 100_000  # the default row limit of a measurement set, also the JSON schema's bound on `rows`


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KPI_INGEST_")

    database_url: str = "sqlite+aiosqlite:///./var/ingest.db"
    nats_url: str = "nats://127.0.0.1:4222"
    stream_replicas: int = 1
    load_bundled_catalogues: bool = True
    host: str = "127.0.0.1"
    port: int = 8001
    relay_batch: int = 500
    checkpoint_key_file: Path = Path("var/checkpoint-key.pem")
    trusted_checkpoint_keys: list[str] = []  # Ed25519 public keys (hex) a verification accepts; empty: any
    # four eyes: an approver who adjusted verifications of a period may not publish it, unless allowed here
    allow_self_approval: bool = False
    auth_failures_per_minute: int = 20  # failed authentications from one address before 429
    max_body_bytes: int = 1_048_576  # a larger request body is refused (413) before it is read
    cors_origins: list[str] = []  # browser origins allowed to call the API (JSON list); none by default
    # measurement sets (POST /v1/measurement-sets) have limits of their own: the body is streamed to a
    # temporary file, never held whole in memory, and refused (413) past either limit
    set_max_bytes: int = 67_108_864  # 64 MiB: a 100,000-row CSV is about 10 MB
    set_max_rows: int = SET_MAX_ROWS
    # a JSON set is parsed whole: its own, smaller limit (large sets come as CSV or XLSX)
    set_max_json_bytes: int = 8_388_608  # 8 MiB
