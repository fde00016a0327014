"""The API contract every service publishes: offline docs, and errors documented as problem+json.

`install_openapi(app)` is called once by each app factory, on an app created with `docs_url=None,
redoc_url=None`. It serves Swagger UI at /docs and ReDoc at /redoc from the assets the
`fastapi-offline` package ships (no CDN: the pages work on a machine without internet), and it
post-processes the generated OpenAPI document so that every operation documents the errors it can
answer as RFC 9457 `application/problem+json` with the `Problem` schema, in place of FastAPI's
`HTTPValidationError` 422 shape. The problem `type` URIs are listed in docs/problems.md.

Each page has a strict Content-Security-Policy of its own: scripts, styles, images and the document
from this origin only, and the page's inline script and style (Swagger UI's and ReDoc's start, the
styles ReDoc injects) allowed by a nonce drawn for that one response; no 'unsafe-inline', no
'unsafe-eval'.
"""

from __future__ import annotations

import json
import secrets
from html import escape
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from kpi_common.problems import PROBLEM_JSON, PROBLEM_TYPE_BASE

DOCS_ASSETS = "/docs/assets"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
KEY_HEADERS = {"authorization", "x-api-key"}
ERROR_DESCRIPTIONS = {
    400: "Bad request: a body that cannot be parsed, or a required header missing (Idempotency-Key)",
    401: "No API key, or a key that is unknown, revoked or expired",
    403: "The key lacks the role, or the peer group or unit, this request needs",
    404: "What the path or the scope names does not exist (or is not published)",
    409: "The request conflicts with what the log already holds",
    413: "The request body is too large",
    422: "A field is invalid; `errors` names each one",
    429: "Too many failed authentications from this client: wait for Retry-After seconds",
    503: "The service cannot do this now (a dependency or configuration is missing)",
}


class FieldProblem(BaseModel):
    """One offending field of a request, and what is wrong with it."""

    field: str = Field(examples=["inputs.a"])
    message: str = Field(examples=["Input should be a valid decimal"])


class ProblemDetails(BaseModel):
    """An RFC 9457 problem: every error response of the three services has this shape."""

    model_config = ConfigDict(title="Problem", extra="allow")

    type: str = Field(
        description=f"A stable URI per kind of problem, {PROBLEM_TYPE_BASE}<slug>; see docs/problems.md",
        examples=[f"{PROBLEM_TYPE_BASE}not-found"],
    )
    title: str = Field(description="A short summary of the kind of problem", examples=["Not found"])
    status: int = Field(description="The HTTP status code", examples=[404])
    detail: str = Field(description="What happened, for this request")
    instance: str = Field(description="The path of the request", examples=["/v1/rankings"])
    errors: list[FieldProblem] = Field(
        default_factory=list,
        description="Each offending field (absent when the problem is not about a field); the first 100 at most",
    )
    errors_total: int | None = Field(
        default=None, description="How many fields were offending, when there were more than `errors` lists"
    )


def install_openapi(app: FastAPI) -> None:
    """Serve /docs and /redoc from packaged assets, and document every error as problem+json."""
    _serve_docs(app)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _serve_docs(app: FastAPI) -> None:
    assets = resources.files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # no badge that asks the public validator about the document
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )
        return with_nonce(bytes(page.body).decode())

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return with_nonce(bytes(get_swagger_ui_oauth2_redirect_html().body).decode())

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return with_nonce(
            REDOC_PAGE.format(
                title=escape(f"{app.title} - ReDoc"),
                favicon=f"{root}{DOCS_ASSETS}/favicon.png",
                script=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
                spec=json.dumps(f"{root}{openapi_url}"),
            ),
            REDOC_STYLE_HASHES,
        )


# ReDoc started by a script rather than by a <redoc> element: the styles it injects need the page's
# nonce, and a browser hides an element's nonce attribute from the script that reads it
REDOC_PAGE = """<!DOCTYPE html>
<html>
<head>
<title>{title}</title>
<meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="shortcut icon" href="{favicon}">
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<noscript>ReDoc needs JavaScript to show this documentation.</noscript>
<div id="redoc"></div>
<script src="{script}"></script>
<script>Redoc.init({spec}, {{nonce: document.currentScript.nonce}}, document.getElementById("redoc"));</script>
</body>
</html>
"""
# The one stylesheet redoc.standalone.js (fastapi-offline 1.7.7) injects as it loads, before it can know
# the nonce: perfect-scrollbar's, first inserted empty. Another bundle has other hashes: its side menu
# then scrolls with the browser's own bars (the browser reports the hash it would need in its console).
REDOC_STYLE_HASHES = (
    "'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",  # the empty stylesheet
)
DOCS_POLICY = (
    "default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'{hashes}; "
    "img-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def with_nonce(html: str, style_hashes: tuple[str, ...] = ()) -> HTMLResponse:
    """The page with a fresh nonce on its inline scripts and styles, under a policy that allows only
    them (and the styles of `style_hashes`) and what this origin serves."""
    nonce = secrets.token_urlsafe(18)
    marked = html.replace("<script>", f'<script nonce="{nonce}">').replace("<style>", f'<style nonce="{nonce}">')
    if marked == html:
        raise RuntimeError("a docs page without its inline script: its Content-Security-Policy needs a look")
    policy = DOCS_POLICY.format(nonce=nonce, hashes="".join(f" {digest}" for digest in style_hashes))
    return HTMLResponse(marked, headers={"Content-Security-Policy": policy})


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Every operation's error responses as problem+json with the `Problem` schema (in place)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method in METHODS:
                _document_errors(path, method, operation)
    for name in VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    return document


def _document_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in sorted(error_statuses(path, method, operation)):
        declared = responses.get(str(status), {})
        if _documents_own_body(declared.get("content", {})):
            continue  # a route that documents its own body for this status (e.g. /readyz 503) keeps it
        description = declared.get("description")
        if not description or description == "Validation Error":  # FastAPI's own words for its 422
            description = ERROR_DESCRIPTIONS.get(status, "An error")
        responses[str(status)] = {
            "description": description,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    operation["responses"] = dict(sorted(responses.items()))


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer, read from what it declares: its own `responses`,
    a key (a security requirement or an API key header), path and scope parameters, a body, an
    Idempotency-Key header, a write method."""
    parameters: list[dict[str, Any]] = operation.get("parameters", [])
    headers = {p["name"].lower() for p in parameters if p.get("in") == "header"}
    queries = {p["name"] for p in parameters if p.get("in") == "query"}
    statuses = {int(code) for code in operation.get("responses", {}) if code.isdigit() and int(code) >= 400}
    if parameters or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        statuses |= {400, 413}  # a body that cannot be parsed at all, or one above the limit
    if operation.get("security") or headers & KEY_HEADERS:
        statuses |= {401, 403, 429}
    if "{" in path or "catalogue" in queries:
        statuses.add(404)
    if "idempotency-key" in headers:
        statuses |= {400, 409}
    if method in {"post", "put", "patch", "delete"}:
        statuses.add(409)
    return statuses


def _documents_own_body(content: dict[str, Any]) -> bool:
    """A body schema other than FastAPI's validation error (an error declared by description only has `{}`)."""
    schemas = [media.get("schema") or {} for media in content.values()]
    return any(schema and schema.get("$ref", "").rsplit("/", 1)[-1] not in VALIDATION_SCHEMAS for schema in schemas)
