"""Every request body, before any route sees it: at most a configured number of bytes (413), and a
JSON body whose objects name each key once (422).

`RequestBodyGuard` is a pure ASGI middleware. It reads the whole body first, counting the bytes as they
arrive (a `Content-Length` above the limit is refused before a byte is read), so that no route ever
parses more than the limit; then it hands the same bytes on to the app. A JSON object that names a key
twice is ambiguous (the parser keeps the last one: `{"unit_id": "kon-tum", "unit_id": "gia-lai"}` would
be read as gia-lai), so it is refused here, once for every route, naming each repeated key.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kpi_common.problems import problem_response

DEFAULT_MAX_BODY_BYTES = 1_048_576  # ten times the largest catalogue document


class RequestBodyGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and is_json(headers.get("content-type", "")):
            refused = _refusal(body)
            if refused is not None:
                detail, errors = refused
                await problem_response(422, "Invalid request", detail, scope["path"], errors)(scope, receive, send)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        response = problem_response(
            413,
            "Content too large",
            f"the request body is larger than this service accepts: at most {limit} bytes",
            scope["path"],
            [{"field": "body", "message": f"at most {limit} bytes"}],
        )
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read, as one message; then what the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def is_json(content_type: str) -> bool:
    """The media types FastAPI parses as JSON: application/json and application/*+json."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _refusal(body: bytes) -> tuple[str, list[dict[str, str]]] | None:
    """Why this JSON body is refused before any route reads it, or None to let the route parse it (a
    body that is not JSON at all gets the route's own answer)."""
    try:
        repeated = repeated_keys(body)
    except ValueError as error:
        if isinstance(error, (json.JSONDecodeError, UnicodeDecodeError)):
            return None
        # the one other ValueError of the parser: an integer of more than 4300 digits
        return "a number in the body is too long", [{"field": "body", "message": "a number of more than 4300 digits"}]
    except RecursionError:
        return None  # nested too deep to parse: the route answers that the body cannot be parsed
    if not repeated:
        return None
    message = "this key appears more than once in its object: send it once"
    errors = [{"field": path, "message": message} for path in repeated]
    return f"repeated key(s) in the JSON body: {', '.join(repeated[:10])}", errors


class _RepeatedKeys(dict[str, Any]):
    """A JSON object that was given some of its keys more than once (the last value kept, as json.loads does)."""

    repeated: tuple[str, ...] = ()


def repeated_keys(body: bytes | str) -> list[str]:
    """The path of every key that some object of the JSON document names twice (`unit_id`, `inputs.a`,
    `evidence.0.title`), in document order; raises ValueError when the body is not JSON."""
    found = False

    def object_of(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        value = dict(pairs)
        if len(value) == len(pairs):
            return value
        found = True
        counted = _RepeatedKeys(value)
        counted.repeated = tuple(key for key, times in Counter(key for key, _ in pairs).items() if times > 1)
        return counted

    document = json.loads(body, object_pairs_hook=object_of)
    return _paths(document) if found else []


def _paths(document: Any) -> list[str]:
    paths: list[str] = []
    pending: list[tuple[str, Any]] = [("", document)]
    while pending:  # depth first, in document order, without recursion
        where, value = pending.pop()
        prefix = f"{where}." if where else ""
        if isinstance(value, _RepeatedKeys):
            paths.extend(prefix + key for key in value.repeated)
        if isinstance(value, dict):
            pending.extend((prefix + str(key), inner) for key, inner in reversed(value.items()))
        elif isinstance(value, list):
            pending.extend((f"{prefix}{index}", inner) for index, inner in reversed(list(enumerate(value))))
    return paths
