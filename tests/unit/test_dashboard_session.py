"""The login form's guard behind a reverse proxy: the Origin a browser sends is compared with the
dashboard's public origin when one is configured, with the proxy's X-Forwarded-Host only when the proxy is
trusted, else with the Host header; closed by default (a forwarded header alone never lets a form in)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request

from kpi_common.problems import Problem
from kpi_core.scope import Scope
from kpi_reporting.dashboard.options import DashboardOptions, origin_of
from kpi_reporting.dashboard.session import CSRF_COOKIE, check_csrf

TOKEN = "t" * 43
PUBLIC = "https://kpi.example.gov.vn"
# what the app sees behind a proxy that rewrites Host: its own address, the browser's in X-Forwarded-*
BEHIND_PROXY = {"host": "127.0.0.1:8003", "x-forwarded-host": "kpi.example.gov.vn", "x-forwarded-proto": "https"}


def form_post(headers: dict[str, str], given: DashboardOptions | None = None) -> Request:
    app = Starlette()
    if given is not None:
        app.state.dashboard = given
    sent = {**headers, "cookie": f"{CSRF_COOKIE}={TOKEN}"}
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": "/dashboard/login",
        "query_string": b"",
        "headers": [(name.encode(), value.encode()) for name, value in sent.items()],
        "app": app,
    }
    return Request(scope)


def accepted(headers: dict[str, str], given: DashboardOptions | None = None) -> bool:
    try:
        check_csrf(form_post(headers, given), TOKEN)
    except Problem as refused:
        assert refused.status == 400
        return False
    return True


def test_behind_a_proxy_that_rewrites_host_the_default_refuses_every_login() -> None:
    browser = {**BEHIND_PROXY, "origin": PUBLIC}
    assert not accepted(browser)  # closed: X-Forwarded-Host is not believed unless configured
    assert not accepted(browser, DashboardOptions())


def test_a_configured_public_origin_lets_its_forms_in_and_no_other() -> None:
    configured = DashboardOptions(public_origin=PUBLIC + "/")
    assert accepted({**BEHIND_PROXY, "origin": PUBLIC}, configured)
    assert accepted({**BEHIND_PROXY, "origin": "HTTPS://KPI.example.gov.vn:443"}, configured)  # the same origin
    for other in ("https://elsewhere.example", "http://kpi.example.gov.vn", "https://kpi.example.gov.vn:8443", "null"):
        assert not accepted({**BEHIND_PROXY, "origin": other}, configured), other
    # the Host header no longer counts once the origin is configured
    assert not accepted({"host": "127.0.0.1:8003", "origin": "http://127.0.0.1:8003"}, configured)


def test_forwarded_headers_count_only_when_the_proxy_is_trusted() -> None:
    trusted = DashboardOptions(trust_forwarded=True)
    assert accepted({**BEHIND_PROXY, "origin": PUBLIC}, trusted)
    assert not accepted({**BEHIND_PROXY, "origin": "https://elsewhere.example"}, trusted)
    assert not accepted({**BEHIND_PROXY, "origin": "http://kpi.example.gov.vn"}, trusted)  # the proxy said https
    chained = {**BEHIND_PROXY, "x-forwarded-host": "kpi.example.gov.vn, 10.0.0.2", "x-forwarded-proto": "https, http"}
    assert accepted({**chained, "origin": PUBLIC}, trusted)  # the first of a chain is the browser's
    # a forged X-Forwarded-Host from a browser on another site does not help it when the proxy is not trusted
    forged = {"host": "127.0.0.1:8003", "x-forwarded-host": "evil.example", "origin": "https://evil.example"}
    assert not accepted(forged)


def test_without_a_proxy_the_host_header_is_compared_as_before() -> None:
    assert accepted({"host": "127.0.0.1:8003", "origin": "http://127.0.0.1:8003"})
    assert accepted({"host": "kpi.example.gov.vn", "origin": PUBLIC})  # a proxy that keeps Host and ends TLS
    assert accepted({"host": "127.0.0.1:8003"})  # no Origin (a client that is not a browser): the token decides
    assert not accepted({"host": "127.0.0.1:8003", "origin": "http://127.0.0.1:9999"})


@pytest.mark.parametrize(
    ("address", "origin"),
    [
        ("https://KPI.example.gov.vn/dashboard", "https://kpi.example.gov.vn"),
        ("http://127.0.0.1:80", "http://127.0.0.1"),
        ("https://kpi.example:8443", "https://kpi.example:8443"),
        ("kpi.example", ""),  # no scheme: no origin, which matches nothing
    ],
)
def test_an_origin_is_written_as_a_browser_writes_it(address: str, origin: str) -> None:
    assert origin_of(address) == origin


def test_reporting_hands_its_dashboard_settings_to_the_dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    from kpi_reporting.config import Settings
    from kpi_reporting.entrypoints.api.app import create_app

    monkeypatch.setenv("KPI_REPORTING_DASHBOARD_PUBLIC_ORIGIN", PUBLIC)
    monkeypatch.setenv("KPI_REPORTING_DASHBOARD_TRUST_FORWARDED", "true")
    monkeypatch.setenv("KPI_REPORTING_DASHBOARD_INGEST_URL", "https://kpi.example.gov.vn/ingest")
    given = create_app(Settings()).state.dashboard
    assert (given.public_origin, given.trust_forwarded) == (PUBLIC, True)
    assert given.event_link(7) == "https://kpi.example.gov.vn/ingest/v1/events/7"
    scope = Scope("hcmc-dti-districts", "1.0", 2024, "self_assessment")
    assert given.explanation_link("quan-1", "1.1", scope, 7) is None  # scoring's address not given: no link
    assert create_app(Settings(dashboard_public_origin=None)).state.dashboard.public_origin is None
