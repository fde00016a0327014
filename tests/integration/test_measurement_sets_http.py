"""POST /v1/measurement-sets through ingest's real app (its middleware, its lifespan, a real database and
nats-server): a set's own limits (413 naming the limit, for bytes and for rows), a body streamed in
pieces well past the 1 MiB of the JSON routes, and a 100,000-row CSV imported in one request."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from kpi_common.checkpoints import AUTOCHECKPOINT_FRAMES, WalCheckpointer
from kpi_common.migrations import upgrade
from kpi_core.catalogue import parse_catalogue
from kpi_core.units import reference_date
from kpi_ingest import MIGRATIONS_DIR, admin
from kpi_ingest.config import Settings
from kpi_ingest.entrypoints.api import set_bodies
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
        # the relay publishes the 100,000 events meanwhile: verification compares what it finds on the
        # stream and what still waits in the outbox (read first), so it holds while the relay runs
        verified = await ingest.get("/v1/audit/verify", headers=admin_key)
        assert verified.json()["ok"] is True, verified.text[:3000]
        assert verified.json()["head_sequence"] == summary["last_sequence"]
        # the log the set wrote is copied into the database while ingest runs (by ingest's
        # checkpointer: its own commits never checkpoint), not left to grow
        log = WalCheckpointer(Path(ingest_url.removeprefix("sqlite+aiosqlite:///")))
        for _ in range(200):
            if log.pending_frames() < AUTOCHECKPOINT_FRAMES:
                break
            await asyncio.sleep(0.05)
        waiting = log.pending_frames()
    await log.close()  # after ingest's connections (closing it earlier would drop their locks)
    assert waiting < AUTOCHECKPOINT_FRAMES


def headers(key: str, idempotency_key: str, content_type: str | None = None) -> dict[str, str]:
    sent = {"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key}
    return sent | ({"content-type": content_type} if content_type else {})


async def registered_small_catalogue(ingest: httpx.AsyncClient, admin_key: str) -> None:
    many = many_yes_no()
    many["nodes"] = many["nodes"][:30]
    many["total_max_points"] = "29"
    many["nodes"][0]["max_points"] = "29"
    registered = await ingest.post("/v1/catalogues", json=many, headers={"Authorization": f"Bearer {admin_key}"})
    assert registered.status_code == 201, registered.text


def sheet_xlsx(sheet_data: str, extra: bytes = b"") -> bytes:
    """An XLSX whose sheet XML is written by hand: a header row, then `sheet_data`."""
    header = "".join(
        f'<c r="{column}1" t="inlineStr"><is><t>{name}</t></is></c>'
        for column, name in zip(
            "ABCDEF", ("catalogue_id", "catalogue_version", "period", "unit_id", "indicator", "a"), strict=True
        )
    )
    workbook, out = openpyxl.Workbook(), io.BytesIO()
    workbook.save(out)
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    sheet = f'<worksheet xmlns="{main}"><sheetData><row r="1">{header}</row>{sheet_data}</sheetData></worksheet>'
    rewritten = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as source, zipfile.ZipFile(rewritten, "w") as target:
        for info in source.infolist():
            data = sheet.encode() + extra if info.filename == "xl/worksheets/sheet1.xml" else source.read(info)
            target.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    return rewritten.getvalue()


async def test_a_hostile_xlsx_is_refused_naming_the_limit_and_a_bad_cell_is_a_4xx(
    ingest_url: str, keys: dict[str, str], nats_url: str
) -> None:
    settings = Settings(database_url=ingest_url, nats_url=nats_url, set_max_bytes=200_000, set_max_rows=1_000)
    async with client(settings) as ingest:
        await registered_small_catalogue(ingest, keys["admin"])
        query = {"catalogue_id": "many-yes-no", "catalogue_version": "1.0", "period": 2024}
        xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        far = f'<row r="5000"><c r="D5000" t="inlineStr"><is><t>{PROVINCES[0]}</t></is></c></row>'
        blank_rows = await ingest.post(
            "/v1/measurement-sets",
            content=sheet_xlsx(far),
            headers=headers(keys["reporter"], "far", xlsx),
            params=query,
        )
        assert blank_rows.status_code == 413, blank_rows.text
        assert blank_rows.json()["errors"] == [{"field": "rows", "message": "at most 1000 rows"}]
        assert "KPI_INGEST_SET_MAX_ROWS" in blank_rows.json()["detail"]
        bomb = await ingest.post(
            "/v1/measurement-sets",
            content=sheet_xlsx("", extra=b" " * 1_000_000),
            headers=headers(keys["reporter"], "bomb", xlsx),
            params=query,
        )
        assert bomb.status_code == 413, bomb.text
        assert bomb.json()["errors"] == [{"field": "file", "message": "at most 800000 bytes unpacked"}]
        assert "4 × KPI_INGEST_SET_MAX_BYTES" in bomb.json()["detail"]
        bad = (
            f'<row r="2"><c r="D2" t="inlineStr"><is><t>{PROVINCES[0]}</t></is></c><c r="F2" t="n"><v>abc</v></c></row>'
        )
        cell = await ingest.post(
            "/v1/measurement-sets",
            content=sheet_xlsx(bad),
            headers=headers(keys["reporter"], "cell", xlsx),
            params=query,
        )
        assert cell.status_code == 422 and cell.headers["content-type"] == "application/problem+json"
        assert cell.json()["errors"][0]["field"] == "file"


async def test_a_json_set_has_its_own_smaller_limit_and_an_untyped_file_part_is_sniffed(
    ingest_url: str, keys: dict[str, str], nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    readers: list[threading.Thread] = []
    real_load_table = set_bodies.load_table

    def load_table(*args: Any) -> Any:
        readers.append(threading.current_thread())
        return real_load_table(*args)

    monkeypatch.setattr(set_bodies, "load_table", load_table)
    settings = Settings(
        database_url=ingest_url, nats_url=nats_url, set_max_bytes=200_000, set_max_rows=1_000, set_max_json_bytes=20_000
    )
    async with client(settings) as ingest:
        await registered_small_catalogue(ingest, keys["admin"])
        rows = [{"unit_id": PROVINCES[0], "indicator": "1.1", "inputs": {"a": True}, "not_applicable_reason": None}]
        document = {"catalogue_id": "many-yes-no", "catalogue_version": "1.0", "period": 2024, "rows": rows * 300}
        big = await ingest.post(
            "/v1/measurement-sets", json=document, headers=headers(keys["reporter"], "json-big", "application/json")
        )
        assert big.status_code == 413, big.text
        assert big.json()["errors"] == [{"field": "body", "message": "at most 20000 bytes"}]
        assert "KPI_INGEST_SET_MAX_JSON_BYTES" in big.json()["detail"]
        streamed = await ingest.post(
            "/v1/measurement-sets",
            content=chunks(json.dumps(document).encode(), 4_096),
            headers=headers(keys["reporter"], "json-streamed", "application/json"),
        )
        assert streamed.status_code == 413 and "KPI_INGEST_SET_MAX_JSON_BYTES" in streamed.json()["detail"]
        # a file part without a Content-Type: read as the CSV it is, not refused as JSON
        boundary = "kpi-boundary"
        part = csv_rows(3)
        form = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="so-lieu.csv"\r\n\r\n'.encode()
            + part
            + f"\r\n--{boundary}--\r\n".encode()
        )
        sniffed = await ingest.post(
            "/v1/measurement-sets",
            content=form,
            headers=headers(keys["reporter"], "untyped", f"multipart/form-data; boundary={boundary}"),
        )
        assert sniffed.status_code == 201, sniffed.text
        assert sniffed.json()["imported"] == 3
        assert readers and all(reader is not threading.main_thread() for reader in readers)  # off the event loop


async def test_a_file_row_is_held_to_the_limits_of_a_single_measurement(
    ingest_url: str, keys: dict[str, str], nats_url: str
) -> None:
    settings = Settings(database_url=ingest_url, nats_url=nats_url, set_max_bytes=400_000, set_max_rows=1_000)
    async with client(settings) as ingest:
        await registered_small_catalogue(ingest, keys["admin"])
        lines = [
            "catalogue_id,catalogue_version,period,unit_id,indicator,a,not_applicable_reason",
            f"many-yes-no,1.0,2024,{PROVINCES[0]},1.1,,{'x' * 100_000}",
            f"many-yes-no,1.0,2024,{'u' * 101},1.2,Có,",
        ]
        content = ("\n".join(lines) + "\n").encode()
        refused = await ingest.post(
            "/v1/measurement-sets", content=content, headers=headers(keys["reporter"], "long", "text/csv")
        )
        assert refused.status_code == 422, refused.text
        errors = {(error["row"], error["field"]): error["message"] for error in refused.json()["summary"]["errors"]}
        assert errors[(2, "not_applicable_reason")] == "String should have at most 2000 characters"
        assert errors[(3, "unit_id")] == "String should have at most 100 characters"


async def test_a_template_refuses_a_unit_that_is_not_registered(
    ingest_url: str, keys: dict[str, str], nats_url: str
) -> None:
    settings = Settings(database_url=ingest_url, nats_url=nats_url)
    async with client(settings) as ingest:
        await registered_small_catalogue(ingest, keys["admin"])
        auth = {"Authorization": f"Bearer {keys['admin']}"}
        for kind in ("csv", "xlsx"):
            path = f"/v1/catalogues/many-yes-no/versions/1.0/template.{kind}"
            planted = await ingest.get(path, params={"unit": '=HYPERLINK("http://evil","x")'}, headers=auth)
            assert planted.status_code == 422, planted.text
            assert planted.json()["errors"] == [{"field": "unit", "message": "not a registered unit id"}]
            assert (await ingest.get(path, params={"unit": PROVINCES[0]}, headers=auth)).status_code == 200
