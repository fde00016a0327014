"""The body of a measurement set, read as it streams in: JSON, a CSV or XLSX file sent as the body, or
a file in a multipart form (field `file`). Every byte goes to a temporary file (in memory up to
1 MiB, on disk beyond), counted against `KPI_INGEST_SET_MAX_BYTES` and hashed on the way; rows are
then read from the file in a worker thread (never on the event loop), every row read counted against
`KPI_INGEST_SET_MAX_ROWS` (a blank one too), an XLSX's unpacked parts against 4 × the byte limit.
A JSON set is parsed whole, so it has its own, smaller limit, `KPI_INGEST_SET_MAX_JSON_BYTES`. A
file sent without a media type (or as `application/octet-stream`) is recognised by its first bytes.
Each file row meets exactly the constraints of a JSON row (`MeasurementSetRowIn`).

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
from pydantic_core import ErrorDetails
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kpi_common.problems import LONGEST_DETAIL, PROBLEM_JSON, Problem, cut, problem_response, problem_type
from kpi_common.request_body import RequestBodyGuard, is_json, repeated_keys
from kpi_core.catalogue import Catalogue
from kpi_core.measurement_sets import RowError, SetRow, SetScope
from kpi_core.set_files import Cell, TooManyRows, parse_rows
from kpi_ingest.adapters.set_files import XLSX_MEDIA_TYPE, ZIP_MAGIC, TooLargeUnpacked, UnreadableFile, load_table
from kpi_ingest.config import SET_MAX_ROWS, Settings
from kpi_ingest.entrypoints.api.schemas import MeasurementSetIn, MeasurementSetRowIn
from kpi_ingest.service_layer.measurement_sets import SetRefused

SET_PATH = "/v1/measurement-sets"
SET_ROWS_BOUND = SET_MAX_ROWS  # the JSON schema's bound on `rows`; KPI_INGEST_SET_MAX_ROWS may be lower
IN_MEMORY = 1_048_576  # what a temporary file holds in memory before it moves to disk
UNPACKED_PER_BYTE = 4  # an XLSX's parts may unpack to at most this many times the byte limit
SNIFFED = ("", "application/octet-stream")  # media types that say nothing: the first bytes decide
JSON = "application/json"


def too_large(limit: int, what: str = "bytes", setting: str | None = None, field: str | None = None) -> Problem:
    setting = setting or f"KPI_INGEST_SET_MAX_{what.upper()}"
    return Problem(
        413,
        "Content too large",
        f"a measurement set is larger than this service accepts: at most {limit} {what} ({setting})",
        [{"field": field or ("body" if what == "bytes" else "rows"), "message": f"at most {limit} {what}"}],
    )


def too_large_json(limit: int) -> Problem:
    return too_large(limit, setting="KPI_INGEST_SET_MAX_JSON_BYTES; send a larger set as CSV or XLSX")


def too_large_unpacked(limit: int) -> Problem:
    return too_large(limit, "bytes unpacked", f"{UNPACKED_PER_BYTE} × KPI_INGEST_SET_MAX_BYTES", field="file")


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
    """The body in a temporary file; a file body's rows already read (in a worker thread) into `table`."""

    file: IO[bytes]
    sha256: str
    media_type: str
    form: dict[str, str]
    table: list[tuple[int, dict[str, Cell]]] | None = None


async def _spool(chunks: AsyncIterator[bytes], limit: int | None = None) -> tuple[IO[bytes], str]:
    """Every chunk to a temporary file, hashed; past `limit` bytes, refused as a JSON set too large."""
    file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY)  # noqa: SIM115 (closed by the caller)
    digest = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if limit is not None and size > limit:
            file.close()
            raise too_large_json(limit)
        digest.update(chunk)
        file.write(chunk)
    file.seek(0)
    return file, digest.hexdigest()


def sniffed_media_type(file: IO[bytes]) -> str:
    """What a body without a telling media type is: an XLSX (a zip), JSON (`{` first), else CSV."""
    start = file.read(1024)
    file.seek(0)
    if start.startswith(ZIP_MAGIC):
        return XLSX_MEDIA_TYPE
    return JSON if start.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "text/csv"


def _size(file: IO[bytes]) -> int:
    size = file.seek(0, 2)
    file.seek(0)
    return size


async def spooled_body(request: Request) -> SpooledBody:
    """The body spooled, its media type known (sniffed when not given), a JSON body within its own
    limit, a file's rows read in a worker thread within the row and unpacked limits."""
    settings: Settings = request.app.state.ingest.settings
    body = await _spooled(request, settings.set_max_json_bytes)
    try:
        if body.media_type in SNIFFED:
            body.media_type = sniffed_media_type(body.file)
        if is_json_body(body):
            if _size(body.file) > settings.set_max_json_bytes:
                raise too_large_json(settings.set_max_json_bytes)
            return body
        body.table = await run_in_threadpool(_read_file, body.file, settings)
        return body
    except BaseException:
        body.file.close()
        raise


def _read_file(file: IO[bytes], settings: Settings) -> list[tuple[int, dict[str, Cell]]]:
    unpacked = UNPACKED_PER_BYTE * settings.set_max_bytes
    try:
        return load_table(file, settings.set_max_rows, unpacked)
    except TooManyRows as many:
        raise too_large(many.limit, "rows") from None
    except TooLargeUnpacked as unpacked_size:
        raise too_large_unpacked(unpacked_size.limit) from None
    except UnreadableFile as unreadable:
        raise Problem(
            422, "Invalid request", str(unreadable), [{"field": "file", "message": str(unreadable)}]
        ) from None


async def _spooled(request: Request, max_json_bytes: int) -> SpooledBody:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "multipart/form-data":
        limit = max_json_bytes if is_json(media_type) else None
        declared = request.headers.get("content-length", "")
        if limit is not None and declared.isdigit() and int(declared) > limit:
            raise too_large_json(limit)
        file, sha256 = await _spool(request.stream(), limit)
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
    part_type = (upload.content_type or "").split(";", 1)[0].strip().lower()
    return SpooledBody(file, sha256, part_type, fields)


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
        if any(error["type"] == "too_long" and tuple(error["loc"]) == ("rows",) for error in invalid.errors()):
            raise too_large(SET_ROWS_BOUND, "rows") from None
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
        first = next((cells for _, cells in body.table or ()), {})
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
    """The file's rows (read by `spooled_body`) as set rows, each held to the constraints of a JSON row."""
    rows: list[SetRow | RowError] = []
    try:
        for row in parse_rows(body.table or (), catalogue, scope, max_rows):
            rows.extend(constrained(row))
    except TooManyRows:
        raise too_large(max_rows, "rows") from None
    return rows


def constrained(row: SetRow | RowError) -> list[SetRow | RowError]:
    """A file row as it is if it meets every constraint of `MeasurementSetRowIn`, else its errors
    (row number and field): a file row may not be longer or shorter than a JSON row may."""
    if isinstance(row, RowError):
        return [row]
    try:
        MeasurementSetRowIn.model_validate(
            {
                "unit_id": row.unit_id,
                "indicator": row.indicator,
                "inputs": dict(row.inputs),
                "not_applicable_reason": row.not_applicable_reason,
                "evidence": list(row.evidence),
            }
        )
    except ValidationError as invalid:
        return [RowError(row.row, _column(error), error["msg"]) for error in invalid.errors()]
    return [row]


def _column(error: ErrorDetails) -> str:
    """The file's column an error is about (`inputs.a` is column `a`, `evidence.0.title` is `evidence_title`)."""
    loc = [str(part) for part in error["loc"]]
    if loc[:1] == ["inputs"] and len(loc) > 1:
        return loc[1]
    if loc[:1] == ["evidence"] and len(loc) > 2:
        return f"evidence_{loc[2]}"
    return ".".join(loc) or "row"


def is_json_body(body: SpooledBody) -> bool:
    return is_json(body.media_type)


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
