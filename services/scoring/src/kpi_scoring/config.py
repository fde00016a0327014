"""Scoring settings: environment variables prefixed KPI_SCORING_."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KPI_SCORING_")

    database_url: str = "sqlite+aiosqlite:///./var/scoring.db"
    nats_url: str = "nats://127.0.0.1:4222"
    stream_replicas: int = 1
    consumer_name: str = "scoring"
    run_consumer: bool = True  # false for API-only replicas when scaled out
    host: str = "127.0.0.1"
    port: int = 8002
    auth_failures_per_minute: int = 20  # failed authentications from one address before 429
    max_body_bytes: int = 1_048_576  # a larger request body is refused (413) before it is read
    cors_origins: list[str] = []  # browser origins allowed to call the API (JSON list); none by default
