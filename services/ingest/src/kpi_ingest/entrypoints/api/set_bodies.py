"""The body of a measurement set, read as it streams in: JSON, a CSV or XLSX file sent as the body, or
a file in a multipart form (field `file`). Every byte goes to a temporary file (in memory up to
1 MiB, on disk beyond), counted against `KPI_INGEST_SET_MAX_BYTES` and hashed on the way; rows are
then read from the file one at a time and counted against `KPI_INGEST_SET_MAX_ROWS`.

The service's ordinary body guard (which holds a JSON body whole, at most 1 MiB) is replaced on this
one path by `SetBodyGuard`, which only counts (and refuses a declared length above the set limit
before reading a byte).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import Headers, UploadFile
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kpi_common.problems import LONGEST_DETAIL, PROBLEM_JSON, Problem, cut, problem_response, problem_type
from kpi_common.request_body import RequestBodyGuard, is_json, repeated_keys
from kpi_core.catalogue import Catalogue
from kpi_core.measurement_sets import RowError, SetRow, SetScope
from kpi_core.set_files import parse_rows
from kpi_ingest.adapters.set_files import UnreadableFile, read_table
from kpi_ingest.entrypoints.api.schemas import MeasurementSetIn
from kpi_ingest.service_layer.measurement_sets import SetRefused

SET_PATH = "/v1/measurement-sets"
IN_MEMORY = 1_048_576  # what a temporary file holds in memory before it moves to disk


def too_large(limit: int, what: str = "bytes") -> Problem:
    return Problem(
        413,
        "Content too large",
        f"a measurement set is larger than this service accepts: at most {limit} {what} "
        f"(KPI_INGEST_SET_MAX_{what.upper()})",
        [{"field": "body" if what == "bytes" else "rows", "message": f"at most {limit} {what}"}],
    )


class SetBodyGuard(RequestBodyGuard):
    """The body guard of every route, except the set path: there the body streams, bounded by its own limit."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, set_max_bytes: int) -> None:
        super().__init__(app, max_body_bytes=max_body_bytes)
        self.set_max_bytes = set_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != SET_PATH:
            await super().__call__(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.set_max_bytes:
            problem = too_large(self.set_max_bytes)
            await problem_response(413, problem.title, problem.detail, scope["path"], problem.errors)(
                scope, receive, send
            )
            return
        await self.app(scope, _counted(receive, self.set_max_bytes), send)


def _counted(receive: Receive, limit: int) -> Receive:
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise too_large(limit)
        return message

    return counted


def install_set_body_guard(app: FastAPI, *, max_body_bytes: int, set_max_bytes: int) -> None:
    """Put `SetBodyGuard` where `install_http_security` put the ordinary guard (same place in the stack)."""
    for index, middleware in enumerate(app.user_middleware):
        if getattr(middleware, "cls", None) is RequestBodyGuard:
            app.user_middleware[index] = Middleware(
                SetBodyGuard, max_body_bytes=max_body_bytes, set_max_bytes=set_max_bytes
            )
            return
    raise RuntimeError("install_http_security must run first: no body guard to extend")


@dataclass
class SpooledBody:
    file: IO[bytes]
    sha256: str
    media_type: str
    form: dict[str, str]


async def _spool(chunks: AsyncIterator[bytes]) -> tuple[IO[bytes], str]:
    file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY)  # noqa: SIM115 (closed by the caller)
    digest = hashlib.sha256()
    async for chunk in chunks:
        digest.update(chunk)
        file.write(chunk)
    file.seek(0)
    return file, digest.hexdigest()


async def spooled_body(request: Request) -> SpooledBody:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "multipart/form-data":
        file, sha256 = await _spool(request.stream())
        return SpooledBody(file, sha256, media_type, {})
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise Problem(
            422, "Invalid request", "send the file in the form field `file`", [{"field": "file", "message": "required"}]
        )

    async def parts() -> AsyncIterator[bytes]:
        while chunk := await upload.read(IN_MEMORY):
            yield chunk

    file, sha256 = await _spool(parts())
    await upload.close()
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    return SpooledBody(file, sha256, upload.content_type or "", fields)


def json_set(body: SpooledBody) -> MeasurementSetIn:
    raw = body.file.read()
    try:
        repeated = repeated_keys(raw)
    except (ValueError, RecursionError):
        raise Problem(
            400, "Bad Request", "the body is not valid JSON", [{"field": "body", "message": "not JSON"}]
        ) from None
    if repeated:
        errors = [
            {"field": path, "message": "this key appears more than once in its object: send it once"}
            for path in repeated
        ]
        raise Problem(422, "Invalid request", f"repeated key(s) in the JSON body: {', '.join(repeated[:10])}", errors)
    try:
        return MeasurementSetIn.model_validate_json(raw)
    except ValidationError as invalid:
        errors = [
            {"field": ".".join(str(part) for part in error["loc"]) or "body", "message": error["msg"]}
            for error in invalid.errors()
        ]
        raise Problem(
            422, "Invalid request", f"invalid field(s): {', '.join(e['field'] for e in errors[:10])}", errors
        ) from None


def json_rows(document: MeasurementSetIn, max_rows: int) -> list[SetRow | RowError]:
    if len(document.rows) > max_rows:
        raise too_large(max_rows, "rows")
    return [
        SetRow(number, row.unit_id, row.indicator, row.inputs, row.not_applicable_reason, tuple(row.evidence))
        for number, row in enumerate(document.rows, start=1)
    ]


def file_scope(body: SpooledBody, query: dict[str, Any]) -> SetScope:
    """A file's scope: the query (or form fields), else its first data row's scope columns."""
    given = {name: query.get(name) or body.form.get(name) for name in ("catalogue_id", "catalogue_version", "period")}
    if not all(given.values()):
        try:
            first = next((cells for _, cells in read_table(body.file) if any(cells.values())), {})
        except UnreadableFile as unreadable:
            raise Problem(
                422, "Invalid request", str(unreadable), [{"field": "file", "message": str(unreadable)}]
            ) from None
        finally:
            body.file.seek(0)
        given = {name: value or (str(first.get(name) or "").strip() or None) for name, value in given.items()}
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise Problem(
            422,
            "Invalid request",
            "a file names its catalogue version and period in its columns or in the query",
            [{"field": name, "message": "required"} for name in missing],
        )
    try:
        period = int(str(given["period"]).removesuffix(".0"))
    except ValueError:
        raise Problem(
            422, "Invalid request", "period must be a year", [{"field": "period", "message": "a year"}]
        ) from None
    return SetScope(str(given["catalogue_id"]), str(given["catalogue_version"]), period)


def file_rows(body: SpooledBody, catalogue: Catalogue, scope: SetScope, max_rows: int) -> list[SetRow | RowError]:
    rows: list[SetRow | RowError] = []
    try:
        for row in parse_rows(read_table(body.file), catalogue, scope):
            rows.append(row)
            if len(rows) > max_rows:
                raise too_large(max_rows, "rows")
    except UnreadableFile as unreadable:
        raise Problem(
            422, "Invalid request", str(unreadable), [{"field": "file", "message": str(unreadable)}]
        ) from None
    return rows


def is_json_body(body: SpooledBody) -> bool:
    return is_json(body.media_type) or body.media_type == ""


def set_refused_response(refused: SetRefused, instance: str) -> JSONResponse:
    """422 problem+json for an atomic set with refused rows: each refused row (bounded as every problem
    is: the first 100, `errors_total` counts all) and the import summary beside it."""
    summary = refused.summary
    body = {
        "type": problem_type(refused.title),
        "title": refused.title,
        "status": refused.status,
        "detail": cut(refused.detail, LONGEST_DETAIL),
        "instance": cut(instance, LONGEST_DETAIL),
        "errors": summary["errors"],
        "errors_total": summary["errors_total"],
        "summary": summary,
    }
    return JSONResponse(body, status_code=refused.status, media_type=PROBLEM_JSON)
