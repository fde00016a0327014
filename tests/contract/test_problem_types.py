"""The contract the apps declare, without running them: stable problem types, all documented; the
OpenAPI documents describe every error as problem+json and every success with a typed model; the docs
pages load nothing from the internet."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from kpi_common.problems import PROBLEM_JSON, PROBLEM_TYPE_BASE, TYPE_SLUGS, problem_response, problem_type
from kpi_ingest.entrypoints.api.app import create_app as ingest_app
from kpi_ingest.service_layer.errors import IngestError
from kpi_reporting.entrypoints.api.app import create_app as reporting_app
from kpi_scoring.entrypoints.api.app import create_app as scoring_app

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "shared" / "src", *(ROOT / "services").glob("*/src")]
RAISED = re.compile(r"(?:Problem|problem_response)\(\s*(\d{3}),\s*\"([^\"]+)\"")
APPS = {"ingest": ingest_app, "scoring": scoring_app, "reporting": reporting_app}
# Open-ended by nature: a list of names and a JSON Schema document.
UNTYPED = {("get", "/v1/schemas"), ("get", "/v1/schemas/{name}")}


def raised_titles() -> set[str]:
    """Every problem title the code raises: Problem(...) and problem_response(...) calls, IngestError kinds,
    and the status phrases the router answers with."""
    titles = {"Not Found", "Method Not Allowed", "Bad Request"}
    for source in SOURCES:
        for path in source.rglob("*.py"):
            titles |= {title for _, title in RAISED.findall(path.read_text(encoding="utf-8"))}
    kinds: list[type[IngestError]] = [IngestError]
    while kinds:
        kind = kinds.pop()
        titles.add(kind.title)
        kinds.extend(kind.__subclasses__())
    return titles


def test_every_problem_the_code_raises_has_a_stable_type() -> None:
    assert raised_titles() - set(TYPE_SLUGS) == set()


def test_every_problem_type_is_documented() -> None:
    documented = set(re.findall(r"\| `([a-z0-9-]+)`", (ROOT / "docs" / "problems.md").read_text(encoding="utf-8")))
    assert set(TYPE_SLUGS.values()) - documented == set()


def test_a_problem_answers_its_type_uri_and_a_title_not_listed_its_own_slug() -> None:
    response = problem_response(404, "Not published", "no publication", "/v1/rankings")
    assert response.media_type == PROBLEM_JSON
    assert response.body.startswith(b'{"type":"https://kpi-ledger.example/problems/not-published"')
    assert problem_type("Not Found") == problem_type("Not found") == f"{PROBLEM_TYPE_BASE}not-found"
    assert problem_type("Quota: exceeded!") == f"{PROBLEM_TYPE_BASE}quota-exceeded"


@pytest.fixture(scope="module", params=list(APPS))
def app(request: pytest.FixtureRequest) -> FastAPI:
    return APPS[request.param]()  # no lifespan: nothing connects


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in document["paths"].items() for method, op in item.items()]


def test_every_error_response_is_documented_as_a_problem(app: FastAPI) -> None:
    document = app.openapi()
    assert not {"HTTPValidationError", "ValidationError"} & set(document["components"]["schemas"])
    for method, path, operation in operations(document):
        errors = {code: response for code, response in operation["responses"].items() if int(code) >= 400}
        if path == "/readyz":
            assert list(errors["503"]["content"]) == ["application/json"]  # the probe's own body
            continue
        for code, response in errors.items():
            assert response["content"] == {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}, (
                f"{method} {path} {code}"
            )
        if operation.get("security"):
            assert {"401", "403"} <= set(errors), f"{method} {path}"
        if "{" in path:
            assert "404" in errors, f"{method} {path}"


def test_every_success_response_has_a_typed_model(app: FastAPI) -> None:
    for method, path, operation in operations(app.openapi()):
        successes = [response for code, response in operation["responses"].items() if code.startswith("2")]
        assert successes, f"{method} {path}"
        for response in successes:
            content = response["content"]
            if "application/json" not in content:  # a file (CSV, XLSX) or the metrics' text format
                continue
            schema = content["application/json"]["schema"]
            typed = "$ref" in schema or "$ref" in schema.get("items", {}) or "oneOf" in schema
            assert typed or (method, path) in UNTYPED, f"{method} {path}: {schema}"


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_the_docs_pages_load_only_what_the_service_serves(app: FastAPI) -> None:
    from fastapi.testclient import TestClient

    client = TestClient(app)
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert "cdn." not in html and "fonts.googleapis" not in html, page
        assets = re.findall(r"""(?:src|href)=["']?([^"' >]+)""", html)
        assert assets, page
        for asset in assets:
            assert asset.startswith("/"), f"{page} loads {asset}"
            answer = client.get(asset)
            assert answer.status_code == 200 and answer.content, asset
    assert client.get("/openapi.json").status_code == 200
