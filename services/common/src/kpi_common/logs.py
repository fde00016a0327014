"""Structured logs: one JSON object per line, each carrying the request id it belongs to.

`KPI_LOG_FORMAT=json` (what `kpi-ledger run` and deploy/ set) makes every service log JSON lines to
stderr: time, level, logger, message, service, and `request_id` when the line was written while
handling a request, or while applying an event that request stored. Without it, logging is left to
the server (plain text), as in tests.

A request id comes from the caller's `X-Request-Id` (when it is a plain token of at most 64
characters) or is made here; every response carries it back in `X-Request-Id`. Ingest records it in
each event the request stores (the envelope's `requestid`), so the consumers that apply the event log
under the same id (`carrying`), however much later and wherever they run.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-request-id"
A_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_STANDARD = {*vars(logging.makeLogRecord({})), "request_id"}  # the attributes every record has
_make_record = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Each record keeps the request id current when it was made (it may be formatted later)."""
    record = _make_record(*args, **kwargs)
    record.request_id = request_id.get()
    return record


logging.setLogRecordFactory(_record_with_request_id)


@contextmanager
def carrying(current: str | None) -> Iterator[None]:
    """Log under this request id (an event's `requestid`, while applying it) until the block ends."""
    token = request_id.set(current)
    try:
        yield
    finally:
        request_id.reset(token)


class JsonLines(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        current = getattr(record, "request_id", None)
        if current is not None:
            line["request_id"] = current
        line |= {name: value for name, value in vars(record).items() if name not in _STANDARD and name != "message"}
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)  # one field, never a bare traceback line
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_from_environment(service: str) -> None:
    """JSON lines on stderr for every logger (uvicorn's included) when KPI_LOG_FORMAT=json."""
    if os.environ.get("KPI_LOG_FORMAT", "").lower() != "json":
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("KPI_LOG_LEVEL", "INFO").upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True


class RequestIds:
    """Every request gets an id (the caller's, if it is a plain token), set for its logs and answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode("latin-1"), b"").decode("latin-1")
        current = given if A_REQUEST_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(current)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = current
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            request_id.reset(token)
