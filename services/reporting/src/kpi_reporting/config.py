"""Reporting settings: environment variables prefixed KPI_REPORTING_."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KPI_REPORTING_")

    database_url: str = "sqlite+aiosqlite:///./var/reporting.db"
    nats_url: str = "nats://127.0.0.1:4222"
    stream_replicas: int = 1
    consumer_name: str = "reporting"
    run_consumer: bool = True  # false for API-only replicas when scaled out
    host: str = "127.0.0.1"
    port: int = 8003
    auth_failures_per_minute: int = 20  # failed authentications from one address before 429
    max_body_bytes: int = 1_048_576  # a larger request body is refused (413) before it is read
    cors_origins: list[str] = []  # browser origins allowed to call the API (JSON list); none by default
    # the dashboard behind a reverse proxy, and where a reader's browser reaches the other services
    dashboard_public_origin: str | None = None  # e.g. "https://kpi.example.gov.vn": the one origin a login comes from
    dashboard_trust_forwarded: bool = False  # believe X-Forwarded-Host/-Proto (only behind a proxy that sets them)
    dashboard_ingest_url: str | None = None  # audit-trail links to the event on ingest
    dashboard_scoring_url: str | None = None  # links to a score's explanation on scoring
