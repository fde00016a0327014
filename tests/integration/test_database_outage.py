"""A database that does not answer is a 503 to retry, not a bug: ingest's POST while its PostgreSQL
server is stopped answers 503 `database-unavailable` with Retry-After and logs one warning line (no
traceback); the same request retried after the restart is stored once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kpi_common.database_errors import database_unavailable
from kpi_ingest import admin
from kpi_ingest.config import Settings
from kpi_ingest.entrypoints.api.app import create_app
from kpi_launcher import embedded
from tests.e2e.fault_systems import Postgres

pytestmark = pytest.mark.postgres

MEASUREMENT = {
    "catalogue_id": "hcmc-dti-districts",
    "catalogue_version": "1.0",
    "period": 2024,
    "unit_id": "quan-1",
    "indicator": "3.3",
    "inputs": {"a": "0.81"},
}


@pytest.fixture
def ingest_on_its_own_server(tmp_path: Path) -> Iterator[tuple[Postgres, str, str]]:
    """A PostgreSQL server of this test's own (it is stopped mid-test), ingest's database migrated on
    it, and a reporter's key."""
    server = Postgres.start(tmp_path / "pg")
    try:
        url = server.database_urls()["ingest"]
        embedded.migrate("ingest", url)
        key = admin.grant_many(url, {"reporter": (["reporter"], ["quan-1"], ["*"], None)})["reporter"]
        yield server, url, key
    finally:
        server.remove()


async def test_a_post_while_the_database_is_down_is_a_503_to_retry_and_the_retry_stores_once(
    ingest_on_its_own_server: tuple[Postgres, str, str],
    tmp_path: Path,
    nats_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, url, key = ingest_on_its_own_server
    app = create_app(Settings(database_url=url, nats_url=nats_url, checkpoint_key_file=tmp_path / "key.pem"))
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "outage-1"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            server.stop()
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                refused = await client.post("/v1/measurements", json=MEASUREMENT, headers=headers)
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "1"
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"].endswith("/database-unavailable")
            assert not [record for record in caplog.records if record.exc_info], "no traceback logged"
            assert any("database unavailable" in record.getMessage() for record in caplog.records)
            server.start_again()
            stored = await client.post("/v1/measurements", json=MEASUREMENT, headers=headers)
            again = await client.post("/v1/measurements", json=MEASUREMENT, headers=headers)
    assert stored.status_code == 201, stored.text
    assert again.status_code == 200 and again.json()["sequence"] == stored.json()["sequence"]


def test_only_errors_of_an_unreachable_database_count_as_unavailable() -> None:
    class CannotConnectNowError(Exception):  # asyncpg's, by name: PostgreSQL in recovery
        pass

    wrapped = RuntimeError("while connecting")
    wrapped.__cause__ = CannotConnectNowError("the database system is in recovery mode")
    assert database_unavailable(wrapped)
    assert not database_unavailable(FileNotFoundError(2, "a file the code looked for"))  # not from a driver
    assert not database_unavailable(ValueError("a bug"))
    assert not database_unavailable(KeyError("unit"))
