"""Request ids and JSON log lines (issue 15), through a real ASGI app in process."""

from __future__ import annotations

import json
import logging
import sys

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from kpi_common.logs import JsonLines
from kpi_common.observability import install_observability

log = logging.getLogger("kpi_ledger.test")


def an_app() -> FastAPI:
    app = FastAPI()
    install_observability(app, "test")

    @app.get("/v1/things/{thing}")
    async def thing(thing: str) -> dict[str, str]:
        log.warning("looked at %s", thing, extra={"thing": thing})
        return {"thing": thing}

    return app


async def get(app: FastAPI, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers or {})


async def test_a_request_keeps_the_callers_id_and_its_log_lines_carry_it(caplog: pytest.LogCaptureFixture) -> None:
    formatter = JsonLines("test")
    with caplog.at_level(logging.WARNING, logger="kpi_ledger.test"):
        caplog.handler.setFormatter(formatter)
        response = await get(an_app(), "/v1/things/a1", {"X-Request-Id": "agency-42.7"})
    assert response.headers["x-request-id"] == "agency-42.7"
    (line,) = [json.loads(caplog.handler.format(record)) for record in caplog.records]
    assert line["request_id"] == "agency-42.7" and line["message"] == "looked at a1" and line["thing"] == "a1"
    assert line["service"] == "test" and line["level"] == "warning"


async def test_a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one() -> None:
    app = an_app()
    fresh = (await get(app, "/v1/things/a")).headers["x-request-id"]
    unsafe = (await get(app, "/v1/things/a", {"X-Request-Id": "a b\\"})).headers["x-request-id"]
    assert len(fresh) == 32 and len(unsafe) == 32 and fresh != unsafe


def test_an_error_with_a_traceback_is_one_json_line() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        record = logging.LogRecord("kpi", logging.ERROR, __file__, 1, "failed", None, exc_info=sys.exc_info())
    text = JsonLines("test").format(record)
    assert "\n" not in text and "ValueError: broken" in json.loads(text)["error"]


async def test_metrics_count_requests_under_their_route_template() -> None:
    app = an_app()
    for thing in ("a", "b", "c"):
        await get(app, f"/v1/things/{thing}")
    await get(app, "/nowhere")
    exposition = (await get(app, "/metrics")).text
    samples = {
        (sample.name, sample.labels.get("route"), sample.labels.get("status")): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
    assert samples[("kpi_http_requests_total", "/v1/things/{thing}", "200")] == 3
    assert samples[("kpi_http_requests_total", "unmatched", "404")] == 1
    assert samples[("kpi_http_request_duration_seconds_count", "/v1/things/{thing}", None)] == 3
