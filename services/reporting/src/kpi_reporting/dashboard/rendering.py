"""Pages from the packaged templates, under a strict Content-Security-Policy of their own: this
origin's stylesheet and icon only, no script at all, no inline style, forms posting here only."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from kpi_common.problems import Problem
from kpi_reporting.dashboard import formatting
from kpi_reporting.dashboard.i18n import language, translator
from kpi_reporting.dashboard.options import options
from kpi_reporting.dashboard.session import PREFIX, csrf_token, has_session, keep_csrf

PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
STATIC = {"dashboard.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("kpi_reporting.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["f1"] = lambda value: f"{value:.1f}"
    return env


@cache
def static_file(name: str) -> bytes | None:
    if name not in STATIC:
        return None
    return resources.files("kpi_reporting.dashboard").joinpath("static", name).read_bytes()


def wants_html(request: Request) -> bool:
    """A browser asks for text/html; an API client (curl, httpx: */*) gets the API's problem+json."""
    return "text/html" in request.headers.get("accept", "")


def page_url(request: Request, **changes: Any) -> str:
    """This page's address with some query parameters changed (None removes one)."""
    params = dict(request.query_params)
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = str(value)
    return request.url.path + ("?" + urlencode(params) if params else "")


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    lang = language(request.query_params.get("lang"))
    token, new_token = csrf_token(request)

    t = translator(lang)

    def num(value: object) -> str:
        if isinstance(value, bool):  # a yes/no input
            return t("yes" if value else "no")
        return formatting.number(value, lang)

    def signed(value: object) -> str:
        return formatting.signed(value, lang)

    def pct(value: float) -> str:
        return formatting.share(value, lang)

    body = (
        environment()
        .get_template(template)
        .render(
            {
                "t": t,
                "lang": lang,
                "other_lang": "en" if lang == "vi" else "vi",
                "num": num,
                "signed": signed,
                "pct": pct,
                "rank_change": formatting.rank_change,
                "url": lambda **changes: page_url(request, **changes),
                "prefix": PREFIX,
                "csrf": token,
                "logged_in": has_session(request),
                "links": options(request),
                "path": request.url.path,
                "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
                **context,
            }
        )
    )
    response = HTMLResponse(body, status_code=status)
    response.headers["content-security-policy"] = PAGE_POLICY
    # same-origin, not no-referrer: a browser then sends this origin in the Origin header of the page's
    # forms (with no-referrer it sends "null"), which the login checks; other sites still get no referrer
    response.headers["referrer-policy"] = "same-origin"
    # what a key unlocked must not stay in a shared cache
    response.headers["cache-control"] = "private, no-store" if has_session(request) else "no-cache"
    if new_token:
        keep_csrf(response, token)
    return response


def problem_page(request: Request, problem: Problem) -> Response:
    """A refusal as a page for a browser (401: the login form), as the API's problem for anyone else."""
    if not wants_html(request):
        raise problem
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = render(request, "error.html", {"problem": problem, "next": target}, problem.status)
    response.headers.update(problem.headers)
    return response
