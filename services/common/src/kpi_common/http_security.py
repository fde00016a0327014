"""What every response of every service carries, whatever route answers it: installed by one call,
`install_http_security(app, ...)`, in each app factory.

- `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer` on every response, and a
  Content-Security-Policy that allows nothing (`default-src 'none'`) unless the response declares its
  own (the /docs and /redoc pages do: kpi_common.openapi, with a nonce per page);
- HEAD wherever GET is served (the GET's status and headers, no body); a 405 lists HEAD beside GET;
- an error no handler expected answers a 500 problem (503 with Retry-After when the database did not
  answer: `kpi_common.problems.unexpected_problem`) and keeps the connection open (Starlette's last
  resort re-raises it, and the server then drops the connection);
- CORS closed by default: no `Access-Control-Allow-Origin` at all unless origins are configured
  (`KPI_<SERVICE>_CORS_ORIGINS`), then exactly those, for reading and for the key and idempotency
  headers, without cookies (keys are bearer tokens);
- every request body bounded and every JSON body free of repeated keys (kpi_common.request_body).

The `Server` header is the server's own: the services are started with `--no-server-header`.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kpi_common.problems import unexpected_problem
from kpi_common.request_body import DEFAULT_MAX_BODY_BYTES, RequestBodyGuard

NOTHING_ALLOWED = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
ALWAYS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "content-security-policy": NOTHING_ALLOWED,  # unless the response has its own
}
CORS_METHODS = ("GET", "HEAD", "POST")
CORS_REQUEST_HEADERS = ("Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "If-None-Match")
CORS_RESPONSE_HEADERS = ("ETag", "Retry-After", "Idempotent-Replayed", "Content-Disposition", "X-Request-Id")


def install_http_security(
    app: FastAPI, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, cors_origins: Sequence[str] = ()
) -> None:
    """Security headers, HEAD, CORS (only for `cors_origins`) and bounded bodies, outermost first."""
    app.add_middleware(RequestBodyGuard, max_body_bytes=max_body_bytes)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=CORS_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_RESPONSE_HEADERS,
            max_age=600,
        )
    app.add_middleware(SecureResponses)  # added last: the outermost, so it sees every response


class SecureResponses:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers.setdefault(name, value)
                allowed = [method.strip() for method in headers.get("allow", "").split(",")]
                if message["status"] == 405 and "GET" in allowed and "HEAD" not in allowed:
                    headers["allow"] = ", ".join([*allowed, "HEAD"])
            elif message["type"] == "http.response.body" and head:
                message = {**message, "body": b""}
            await send(message)

        # the app answers a HEAD as the GET it stands for; the server, which still sees HEAD, sends no body
        inner = {**scope, "method": "GET"} if head else scope
        try:
            await self.app(inner, receive, send_secured)
        except Exception as error:
            if started:
                raise  # half a response is sent: only dropping the connection tells the client
            await unexpected_problem(scope["path"], error)(scope, receive, send_secured)
