"""RFC 9457 problem details for every error a service returns."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from kpi_common.database_errors import database_unavailable

if TYPE_CHECKING:  # FastAPI is imported where the handlers are installed: `Problem` is raised from code
    # a CLI job runs too (a rebuild builds a projection and serves nothing), which need not load it
    from fastapi import FastAPI, Request

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://kpi-ledger.example/problems/"  # an identifier, documented in docs/problems.md
log = logging.getLogger(__name__)
HTTP_STATUSES = {status.value for status in HTTPStatus}
# A problem is bounded whatever the request: the first MOST_ERRORS offending fields (and `errors_total`, the
# count of all, when there were more), each text cut to a length that no field name or message needs.
MOST_ERRORS = 100
LONGEST_DETAIL = 2000
LONGEST_ERROR_TEXT = 500

# Every kind of problem has a stable `type`: https://kpi-ledger.example/problems/<slug>. The slug of a
# known title is fixed here, so that rewording a title never changes a type; docs/problems.md lists them
# all (a unit test checks it). A title not listed falls back to its own slug.
TYPE_SLUGS: dict[str, str] = {
    "Bad request": "bad-request",
    "Bad Request": "bad-request",
    "Idempotency-Key required": "idempotency-key-required",
    "Unauthorized": "unauthorized",
    "Forbidden": "forbidden",
    "Four eyes: who adjusted may not publish": "four-eyes",
    "Not found": "not-found",
    "Not Found": "not-found",
    "Not published": "not-published",
    "Unknown unit": "unknown-unit",
    "Method Not Allowed": "method-not-allowed",
    "Catalogue version already registered": "version-already-registered",
    "Idempotency key reused with a different request": "idempotency-key-reused",
    "Period closed": "period-closed",
    "Conflict": "conflict",
    "Verification would replace an adjustment": "adjustment-not-superseded",
    "Ranking incomplete": "ranking-incomplete",
    "Invalid request": "invalid-request",
    "Invalid as_of": "invalid-as-of",
    "Unknown catalogue version": "unknown-catalogue-version",
    "Invalid measurement": "invalid-measurement",
    "Invalid catalogue": "invalid-catalogue",
    "Invalid unit list": "invalid-unit-list",
    "Invalid API key request": "invalid-key-request",
    "Unit not assessed in this catalogue and period": "unit-not-in-peer-group",
    "No points to rank": "no-points-to-rank",
    "Unknown pillar": "unknown-pillar",
    "Unknown indicator": "unknown-indicator",
    "Too many failed authentications": "too-many-failed-authentications",
    "Internal error": "internal-error",
    "Database unavailable": "database-unavailable",
    "No signing key": "no-signing-key",
    "Log integrity failure": "log-integrity-failure",
    "Content too large": "content-too-large",
}


def problem_type(title: str) -> str:
    """The stable `type` URI of the problem with this title."""
    slug = TYPE_SLUGS.get(title) or re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "problem"
    return PROBLEM_TYPE_BASE + slug


class Problem(Exception):
    """An error a client can act on; `errors` names each offending field."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors or []
        self.headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}


def problem_response(
    status: int, title: str, detail: str, instance: str, errors: Sequence[dict[str, str]] | None = None
) -> JSONResponse:
    """The one builder of every problem: its size is bounded, however many fields a request got wrong."""
    body: dict[str, Any] = {
        "type": problem_type(title),
        "title": title,
        "status": status,
        "detail": cut(detail, LONGEST_DETAIL),
        "instance": cut(instance, LONGEST_DETAIL),
    }
    if errors:
        body["errors"] = [
            {name: cut(text, LONGEST_ERROR_TEXT) for name, text in error.items()} for error in errors[:MOST_ERRORS]
        ]
        if len(errors) > MOST_ERRORS:
            body["errors_total"] = len(errors)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters ending in "…" when it is longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


UNION_MEMBER_TAGS = {"decimal", "bool", "str", "int", "float"}


def _field_name(err: Any) -> str:
    """`inputs.a`, not `body.inputs.a.decimal`; the body itself when it is not JSON or not an object."""
    if err.get("type") == "json_invalid":
        return "body"
    parts = [str(part) for part in err["loc"] if part != "body"]
    while parts and parts[-1] in UNION_MEMBER_TAGS:
        parts.pop()
    return ".".join(parts) or "body"


def install_problem_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        response = problem_response(exc.status, exc.title, exc.detail, request.url.path, exc.errors)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: dict[str, dict[str, str]] = {}  # one entry per field, not per union member
        for err in exc.errors():
            field = _field_name(err)
            errors.setdefault(field, {"field": field, "message": err["msg"]})
        named = list(errors)
        more = f" and {len(named) - MOST_ERRORS} more" if len(named) > MOST_ERRORS else ""
        detail = f"invalid field(s): {', '.join(named[:MOST_ERRORS])}{more}"
        return problem_response(422, "Invalid request", detail, request.url.path, list(errors.values()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # the title is the kind (the status phrase), the detail what happened: "Bad Request" for a body
        # that cannot be parsed, "Not Found" for a URL no route serves
        title = HTTPStatus(exc.status_code).phrase if exc.status_code in HTTP_STATUSES else str(exc.detail)
        response = problem_response(exc.status_code, title, str(exc.detail), request.url.path)
        response.headers.update(exc.headers or {})  # e.g. Allow on a 405
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return unexpected_problem(request.url.path, exc)


def unexpected_problem(path: str, error: BaseException) -> JSONResponse:
    """An error no handler expected: 503 with Retry-After when the database could not be reached (one
    warning line; the outcome of a write cut off in its commit is unknown, so the client retries with
    its Idempotency-Key), else a 500 with the traceback logged."""
    if database_unavailable(error):
        log.warning("database unavailable on %s: %s: %s", path, type(error).__name__, cut(str(error), 300))
        detail = "the database did not answer; retry with the same Idempotency-Key (a retry is never stored twice)"
        response = problem_response(503, "Database unavailable", detail, path)
        response.headers["Retry-After"] = "1"
        return response
    log.error("unexpected error on %s", path, exc_info=error)
    return problem_response(500, "Internal error", "the request could not be completed; nothing was stored", path)
