"""RFC 9457 problem details for every error a service returns."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class Problem(Exception):
    """An error a client can act on; `errors` names each offending field."""

    def __init__(self, status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors or []


def problem_response(
    status: int, title: str, detail: str, instance: str, errors: list[dict[str, str]] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


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
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, request.url.path, exc.errors)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, str]] = []
        for err in exc.errors():
            error = {"field": _field_name(err), "message": err["msg"]}
            if error["field"] not in {known["field"] for known in errors}:  # one entry per field, not per union member
                errors.append(error)
        fields = ", ".join(error["field"] for error in errors)
        return problem_response(422, "Invalid request", f"invalid field(s): {fields}", request.url.path, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail), str(exc.detail), request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return problem_response(
            500, "Internal error", "the request could not be completed; nothing was stored", request.url.path
        )
