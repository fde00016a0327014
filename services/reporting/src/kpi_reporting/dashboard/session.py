"""Who is reading a page: the API key from the login cookie (or, like the JSON API, from the
Authorization / X-API-Key header), checked by `kpi_common.access` exactly as the JSON routes check it.

The key is authenticated by `presented_key` (the same key cache, failure limit and log line) and each
page asks the same reader function its JSON twin depends on (`period_reader`, `unit_reader`,
`unpublished_unit_reader`): the dashboard has no policy of its own.

The login form is protected by a double-submit token: a random value in an HTTP-only, SameSite=Strict
cookie, repeated in the form; a POST whose two copies differ (or whose Origin is another site's) is
refused before the key is even read. Behind a reverse proxy that rewrites Host, the dashboard is told its
public origin (or to believe the proxy's X-Forwarded-Host): `options.DashboardOptions`.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from kpi_common.access import api_key_header, bearer, presented_key
from kpi_common.auth import ApiKey
from kpi_common.problems import Problem
from kpi_reporting.dashboard.options import options, origin_of

PREFIX = "/dashboard"
SESSION_COOKIE = "kpi_dashboard_key"
CSRF_COOKIE = "kpi_dashboard_csrf"
SESSION_SECONDS = 8 * 3600  # a working day
LONGEST_SECRET = 200


async def caller_key(request: Request) -> ApiKey | None:
    """The key in force the caller presents (a header first, else the login cookie), None for none;
    401 for a key not in force, 429 after too many failures: `presented_key`'s answers."""
    credentials = await bearer(request)
    header_key = await api_key_header(request)
    if credentials is None and not header_key:
        secret = request.cookies.get(SESSION_COOKIE, "")
        if secret:
            credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=secret[:LONGEST_SECRET])
    return await presented_key(request, credentials, header_key)


def has_session(request: Request) -> bool:
    return bool(request.cookies.get(SESSION_COOKIE))


def _cookie(response: Response, name: str, value: str, max_age: int, same_site: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        secure=True,
        httponly=True,
        samesite=same_site,  # type: ignore[arg-type]
    )


def start_session(response: Response, secret: str) -> None:
    # Lax: a link to the dashboard from elsewhere opens it logged in; every change is a POST with a token
    _cookie(response, SESSION_COOKIE, secret, SESSION_SECONDS, "lax")


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, secure=True, httponly=True, samesite="lax")


def csrf_token(request: Request) -> tuple[str, bool]:
    """The page's form token and whether it is new (then the response must set its cookie)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if 32 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum():
        return token, False
    return secrets.token_urlsafe(32), True


def keep_csrf(response: Response, token: str) -> None:
    _cookie(response, CSRF_COOKIE, token, SESSION_SECONDS, "strict")


def check_csrf(request: Request, form_token: str) -> None:
    """400 unless the form's token equals the cookie's and the request comes from this dashboard's
    origin: the configured public origin, else (behind a trusted proxy) the forwarded host, else Host."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    origin = request.headers.get("origin")
    same_origin = origin is None or origin_of(origin) in options(request).expected_origins(request)
    if not (cookie and form_token and hmac.compare_digest(cookie.encode(), form_token.encode()) and same_origin):
        raise Problem(
            400,
            "Bad request",
            "the form's CSRF token is missing or does not match (or the form was sent from another site): "
            "open the login page again",
            [{"field": "csrf", "message": "missing or not matching"}],
        )


def next_page(target: str | None) -> str:
    """Where to go after logging in: a dashboard page of this site only (never another site)."""
    if target and target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return PREFIX
