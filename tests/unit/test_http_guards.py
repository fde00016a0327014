"""What every response carries and what every request body may be, in-process (the apps without their
lifespan: nothing connects): bounded problems, bounded bodies, repeated JSON keys, security headers,
HEAD, CORS closed unless configured, the docs pages' own policy (issue 16)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kpi_common.http_security import install_http_security
from kpi_common.problems import MOST_ERRORS, install_problem_handlers, problem_response
from kpi_common.request_body import repeated_keys
from kpi_ingest.config import Settings as IngestSettings
from kpi_ingest.entrypoints.api.app import create_app as ingest_app
from kpi_reporting.config import Settings as ReportingSettings
from kpi_reporting.entrypoints.api.app import create_app as reporting_app

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
JSON = {"Content-Type": "application/json"}


def test_a_problem_lists_the_first_errors_and_counts_them_all() -> None:
    errors = [{"field": f"inputs.x{index}", "message": "no such input"} for index in range(400_000)]
    response = problem_response(422, "Invalid measurement", "x" * 10_000_000, "/v1/measurements", errors)
    body = json.loads(response.body)
    assert len(body["errors"]) == MOST_ERRORS and body["errors"][0]["field"] == "inputs.x0"
    assert body["errors_total"] == 400_000
    assert len(response.body) < 64_000


def test_a_problem_with_few_errors_has_no_count_and_every_text_is_cut() -> None:
    body = json.loads(problem_response(422, "Invalid request", "d", "/", [{"field": "a", "message": "m" * 10**6}]).body)
    assert "errors_total" not in body
    assert len(body["errors"][0]["message"]) == 500 and body["errors"][0]["message"].endswith("…")


def test_every_repeated_key_is_named_by_its_path_in_document_order() -> None:
    body = '{"unit_id": "kon-tum", "unit_id": "gia-lai", "inputs": {"a": 1, "a": 2}, "evidence": [{"t": 1, "t": 2}]}'
    assert repeated_keys(body) == ["unit_id", "inputs.a", "evidence.0.t"]
    assert repeated_keys('{"a": {"a": 1}, "b": [{"a": 1}, {"b": 2}]}') == []
    assert repeated_keys("[" * 50 + "]" * 50) == []


@pytest.fixture
def ingest() -> Iterator[TestClient]:
    yield TestClient(ingest_app(IngestSettings(max_body_bytes=10_000)))


def test_a_body_above_the_limit_is_refused_before_it_is_read(ingest: TestClient) -> None:
    declared = ingest.post("/v1/measurements", content=b"{}" + b" " * 10_000, headers=JSON)
    streamed = ingest.post("/v1/measurements", content=iter([b" " * 4_000] * 3), headers=JSON)  # no Content-Length
    for refused in (declared, streamed):
        assert refused.status_code == 413, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("/content-too-large") and "10000 bytes" in refused.json()["detail"]


def test_a_repeated_key_is_refused_naming_it_before_any_route(ingest: TestClient) -> None:
    body = b'{"catalogue_id": "vn-dti-province", "unit_id": "kon-tum", "unit_id": "gia-lai"}'
    refused = ingest.post("/v1/context", content=body, headers=JSON)
    assert refused.status_code == 422
    assert refused.json()["title"] == "Invalid request"
    assert [error["field"] for error in refused.json()["errors"]] == ["unit_id"]


def test_a_number_too_long_to_parse_is_a_422_naming_the_body(ingest: TestClient) -> None:
    refused = ingest.post("/v1/context", content=b'{"values": {"population": ' + b"1" * 5000 + b"}}", headers=JSON)
    assert refused.status_code == 422 and refused.json()["errors"] == [
        {"field": "body", "message": "a number of more than 4300 digits"}
    ]


def test_many_invalid_fields_answer_quickly_with_a_bounded_problem() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/inputs")
    async def post_inputs(inputs: dict[str, Decimal | bool | str]) -> None:
        """Inputs as a measurement takes them."""

    many = {f"x{index}": [] for index in range(30_000)}  # each fails every member of the union
    started = time.monotonic()
    refused = TestClient(app).post("/inputs", json=many)
    assert time.monotonic() - started < 5  # one entry per field was found by a scan per error: minutes
    assert refused.status_code == 422
    assert len(refused.json()["errors"]) == MOST_ERRORS and refused.json()["errors_total"] == 30_000
    assert refused.json()["detail"].endswith(f"and {30_000 - MOST_ERRORS} more")


def test_every_response_has_the_security_headers_and_head_answers_like_get(ingest: TestClient) -> None:
    for response in (ingest.get("/healthz"), ingest.get("/nowhere"), ingest.post("/healthz")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
    head, get = ingest.head("/healthz"), ingest.get("/healthz")
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", str(len(get.content)))
    assert ingest.post("/healthz").headers["allow"] == "GET, HEAD"


def test_cors_is_closed_unless_origins_are_configured() -> None:
    preflight = {"Origin": "https://dashboard.example", "Access-Control-Request-Method": "GET"}
    closed = TestClient(reporting_app(ReportingSettings()))
    assert "access-control-allow-origin" not in closed.options("/v1/rankings", headers=preflight).headers
    assert "access-control-allow-origin" not in closed.get("/healthz", headers={"Origin": "https://x.example"}).headers
    opened = TestClient(reporting_app(ReportingSettings(cors_origins=["https://dashboard.example"])))
    allowed = opened.options("/v1/rankings", headers={**preflight, "Access-Control-Request-Headers": "Authorization"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://dashboard.example"
    assert "access-control-allow-credentials" not in allowed.headers
    other = opened.get("/healthz", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers


def test_an_unexpected_error_is_a_500_problem_with_the_headers_and_not_raised_further() -> None:
    app = FastAPI()
    install_problem_handlers(app)
    install_http_security(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    answer = TestClient(app).get("/boom")  # the test client re-raises what reaches the server
    assert answer.status_code == 500 and answer.json()["title"] == "Internal error"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_the_docs_pages_allow_only_their_own_scripts_and_styles(ingest: TestClient) -> None:
    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        answer = ingest.get(page)
        policy = answer.headers["content-security-policy"]
        nonce = re.search(r"'nonce-([^']+)'", policy)
        assert nonce, page
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy and "default-src 'none'" in policy
        inline = re.findall(r"<(?:script|style)(\s[^>]*)?>(?!\s*</script>)", answer.text)
        assert inline and all(f'nonce="{nonce.group(1)}"' in (attributes or "") for attributes in inline), page
        assert ingest.get(page).headers["content-security-policy"] != policy  # a nonce per response
