"""POST /v1/measurement-sets through ingest's real app (its middleware, its lifespan, a real database and
nats-server): a set's own limits (413 naming the limit, for bytes and for rows), a body streamed in
pieces well past the 1 MiB of the JSON routes, and a 100,000-row CSV imported in one request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from kpi_common.migrations import upgrade
from kpi_core.catalogue import parse_catalogue
from kpi_core.units import reference_date
from kpi_ingest import MIGRATIONS_DIR, admin
from kpi_ingest.config import Settings
from kpi_ingest.entrypoints.api.app import create_app
from tests.conftest import fixture_catalogue
from tests.e2e.conftest import bundled_peer_group

PROVINCES = [unit.id for unit in bundled_peer_group("provinces").members(reference_date(2024))]
INDICATORS = 1_588  # × 63 provinces: just over 100,000 rows


def many_yes_no() -> dict[str, Any]:
    """A catalogue of many yes/no components for the provinces: enough rows for a 100,000-row set."""
    document = fixture_catalogue()
    nodes = [{"code": "1", "parent": None, "level": "pillar", "name_vi": "Trụ cột", "max_points": str(INDICATORS)}]
    nodes += [
        {
            "code": f"1.{index}",
            "parent": "1",
            "level": "component",
            "name_vi": f"Chỉ số {index}",
            "max_points": "1",
            "inputs": [{"name": "a", "type": "boolean"}],
            "rule": {"kind": "yes_no", "input": "a"},
        }
        for index in range(1, INDICATORS + 1)
    ]
    return {**document, "id": "many-yes-no", "total_max_points": str(INDICATORS), "nodes": nodes}


@pytest.fixture
def ingest_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ingest.db'}"
    upgrade(MIGRATIONS_DIR, url)
    return url


@pytest.fixture
def keys(ingest_url: str) -> dict[str, str]:
    return admin.grant_many(
        ingest_url, {"reporter": (["reporter"], ["*"], ["*"], None), "admin": (["admin", "auditor"], [], ["*"], None)}
    )


@asynccontextmanager
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest", timeout=600) as connected:
            yield connected


async def chunks(content: bytes, size: int = 65_536) -> AsyncIterator[bytes]:
    for start in range(0, len(content), size):
        yield content[start : start + size]


async def post(ingest: httpx.AsyncClient, key: str, content: bytes, key_name: str, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": key_name, "content-type": "text/csv"}
    # an iterator: sent in pieces, with no Content-Length (what a streaming client does)
    return await ingest.post("/v1/measurement-sets", content=chunks(content), headers=headers, params=params)


def csv_rows(count: int) -> bytes:
    lines = ["catalogue_id,catalogue_version,period,unit_id,indicator,a"]
    for index in range(count):
        unit, code = PROVINCES[index % len(PROVINCES)], f"1.{index // len(PROVINCES) + 1}"
        lines.append(f"many-yes-no,1.0,2024,{unit},{code},{'Có' if index % 3 else 'Không'}")
    return ("\n".join(lines) + "\n").encode("utf-8")


async def test_a_set_has_limits_of_its_own_and_a_refusal_names_them(
    ingest_url: str, keys: dict[str, str], nats_url: str
) -> None:
    settings = Settings(database_url=ingest_url, nats_url=nats_url, set_max_bytes=200_000, set_max_rows=1_000)
    async with client(settings) as ingest:
        small = csv_rows(10)
        assert (await post(ingest, keys["reporter"], small, "unknown", period=2024)).status_code == 422
        declared = await ingest.post(
            "/v1/measurement-sets",
            content=b"x" * 200_001,
            headers={
                "Authorization": f"Bearer {keys['reporter']}",
                "Idempotency-Key": "big",
                "content-type": "text/csv",
            },
        )
        assert declared.status_code == 413 and "at most 200000 bytes" in declared.json()["detail"]
        streamed = await post(ingest, keys["reporter"], b"unit_id,indicator\n" + b"x" * 300_000, "streamed")
        assert streamed.status_code == 413 and streamed.json()["errors"] == [
            {"field": "body", "message": "at most 200000 bytes"}
        ]
        assert "KPI_INGEST_SET_MAX_BYTES" in streamed.json()["detail"]
        # rows: registered catalogue, 1,001 rows within the byte limit
        admin_key = {"Authorization": f"Bearer {keys['admin']}"}
        many = many_yes_no()
        many["nodes"] = many["nodes"][:30]
        many["total_max_points"] = "29"
        many["nodes"][0]["max_points"] = "29"
        assert (await ingest.post("/v1/catalogues", json=many, headers=admin_key)).status_code == 201
        rows = await post(ingest, keys["reporter"], csv_rows(1_001), "rows")
        assert rows.status_code == 413 and rows.json()["errors"] == [{"field": "rows", "message": "at most 1000 rows"}]
        # the ordinary limit still holds on every other route
        other = await ingest.post("/v1/measurements", content=b"{" + b" " * 1_100_000 + b"}", headers=admin_key)
        assert other.status_code == 413


async def test_a_100000_row_csv_streams_in_and_imports_in_one_request(
    ingest_url: str, keys: dict[str, str], nats_url: str
) -> None:
    catalogue = many_yes_no()
    assert parse_catalogue(catalogue).id == "many-yes-no"
    settings = Settings(database_url=ingest_url, nats_url=nats_url)
    content = csv_rows(100_000)
    assert len(content) > 3 * settings.max_body_bytes  # far more than any JSON route takes
    async with client(settings) as ingest:
        admin_key = {"Authorization": f"Bearer {keys['admin']}"}
        registered = await ingest.post("/v1/catalogues", json=catalogue, headers=admin_key)
        assert registered.status_code == 201, registered.text
        imported = await post(ingest, keys["reporter"], content, "hundred-thousand")
        assert imported.status_code == 201, imported.text[:500]
        summary = imported.json()
        assert (summary["imported"], summary["refused"]) == (100_000, 0)
        assert summary["last_sequence"] - summary["first_sequence"] == 99_999
        verified = await ingest.get("/v1/audit/verify", headers=admin_key)
        assert verified.json()["ok"] is True
        assert verified.json()["head_sequence"] == summary["last_sequence"]
