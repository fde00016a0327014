"""The dashboard over HTTP on the running system (issue 14): the pages show what the JSON API answers,
in Vietnamese format; they follow the API's access policy exactly; the login cookie and its CSRF guard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from kpi_reporting import views
from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e
CAT = {"catalogue": "vn-dti-province", "version": "1.0"}
Q2023, Q2024 = {**CAT, "period": 2023}, {**CAT, "period": 2024}
HTML = {"Accept": "text/html,application/xhtml+xml"}
REASON = "Minh chứng chỉ cho thấy 2 trên 4 văn bản chỉ đạo"

SELF_2023 = [("gia-lai", "1.6", {"a": True}), ("binh-dinh", "1.7", {"a": True}), ("da-nang", "1.6", {"a": True})]
SELF_2024 = [
    ("gia-lai", "1.6", {"a": True}),
    ("gia-lai", "1.3", {"a": 3, "b": 4}),
    ("gia-lai", "3.1", {"a": 600_000, "b": 1_500_000}),
    ("binh-dinh", "1.7", {"a": True}),
    ("binh-dinh", "3.1", {"a": 1_275_000, "b": 1_500_000}),
    ("da-nang", "1.6", {"a": True}),
    ("da-nang", "3.2", {"a": 380_000, "b": 380_000}),
]
VERIFIED_2023 = [("gia-lai", "1.6"), ("binh-dinh", "1.7"), ("da-nang", "1.6")]
VERIFIED_2024 = [("gia-lai", "1.6"), ("da-nang", "1.6"), ("da-nang", "3.2")]


def script_history(running: RunningSystem) -> int:
    """Two years of three provinces: self-assessed, verified (one adjustment with a reason), both published."""
    last = 0
    for period, submissions, verified in ((2023, SELF_2023, VERIFIED_2023), (2024, SELF_2024, VERIFIED_2024)):
        scope = {"catalogue_id": CAT["catalogue"], "catalogue_version": CAT["version"], "period": period}
        for unit, indicator, inputs in submissions:
            body = {**scope, "unit_id": unit, "indicator": indicator, "inputs": inputs}
            posted = running.post(unit, "/v1/measurements", body, f"dash-{period}-{unit}-{indicator}")
            assert posted.status_code == 201, posted.text
        for unit, indicator in verified:
            body = {**scope, "unit_id": unit, "indicator": indicator, "decision": "accepted"}
            posted = running.post("evaluator", "/v1/verifications", body, f"dash-v-{period}-{unit}-{indicator}")
            assert posted.status_code == 201, posted.text
        if period == 2024:  # the evaluator finds 2 of the 4 directives: 1.3 is 5, not 7.5
            body = {**scope, "unit_id": "gia-lai", "indicator": "1.3", "decision": "adjusted"}
            body |= {"inputs": {"a": 2, "b": 4}, "reason": REASON}
            posted = running.post("evaluator", "/v1/verifications", body, "dash-v-2024-adjust")
            assert posted.status_code == 201, posted.text
        body = {**scope, "incomplete_reason": "Công bố thử nghiệm bảng điều khiển"}
        published = running.post("approver", "/v1/publications", body, f"dash-p-{period}")
        assert published.status_code == 201, published.text
        last = published.json()["sequence"]
    for query in (Q2023, Q2024):
        running.wait_for(
            lambda q=query: public(running).get("/v1/rankings", params={**q, "stage": "published"}).status_code == 200
        )
    running.wait_until_projected(last, {**Q2024, "stage": "verification"})
    return last


def public(running: RunningSystem) -> httpx.Client:
    """A client that sends no key (the fixture's clients send the auditor's)."""
    return httpx.Client(base_url=running.reporting.base_url, timeout=10.0)


def vi(number: str | None) -> str:
    """The API's "1234.50" as the dashboard writes it in Vietnamese: "1.234,50"."""
    if number is None:
        return "–"
    whole, _, fraction = number.lstrip("-").partition(".")
    grouped = f"{int(whole):,}".replace(",", ".")
    return ("−" if number.startswith("-") else "") + grouped + ("," + fraction if fraction else "")


class Rows(HTMLParser):
    """The rows of the tables with a class: (the row's attributes, the text of each cell)."""

    def __init__(self, table_class: str) -> None:
        super().__init__()
        self.table_class, self.depth, self.rows = table_class, 0, []
        self._cell: list[str] | None = None
        self.rows: list[tuple[dict[str, str], list[str]]]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "table" and self.table_class in found.get("class", "").split():
            self.depth = 1
        elif self.depth and tag == "tr":
            self.rows.append((found, []))
        elif self.depth and tag in ("td", "th") and self.rows:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.depth = 0
        elif tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1][1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table(html: str, table_class: str) -> list[tuple[dict[str, str], list[str]]]:
    parser = Rows(table_class)
    parser.feed(html)
    return [(attrs, cells) for attrs, cells in parser.rows if cells and "data-" in " ".join(attrs)]


@pytest.fixture(scope="module")
def history(running: RunningSystem) -> int:
    return script_history(running)


NOT_PUBLISHED = "Kết quả của kỳ này chưa được công bố."


def assert_not_published_page(page: httpx.Response, period: int | None = None) -> None:
    """A page that says so, with the pickers to choose another period: the API's 404, never a 500."""
    assert page.status_code == 404, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert NOT_PUBLISHED in page.text and '<form class="pickers"' in page.text
    if period is not None:
        assert f"<option selected>{period}</option>" in page.text


# first in this module: it runs on the fresh system, before `history` publishes anything
def test_before_the_first_publication_the_dashboard_says_nothing_is_published(running: RunningSystem) -> None:
    with public(running) as client:
        assert client.get("/v1/rankings", params={**Q2024, "stage": "published"}).status_code == 404
        for params in ({}, {"lang": "en"}, {"pillar": "3"}):
            page = client.get("/dashboard", params=params, headers=HTML)
            if params.get("lang") == "en":
                assert page.status_code == 404 and "The result of this period is not published." in page.text
            else:
                assert_not_published_page(page)
        assert "<strong>3. " in client.get("/dashboard", params={"pillar": "3"}, headers=HTML).text


def test_a_period_or_a_publication_without_a_result_is_a_page_saying_so(running: RunningSystem, history: int) -> None:
    published = {**Q2024, "stage": "published"}
    with public(running) as client:
        for params, period in (
            ({**CAT, "period": 2022, "stage": "published"}, 2022),  # no publication of that period
            ({**CAT, "period": 2030}, 2030),
            ({**published, "publication": "no-such-publication"}, 2024),  # an id that names nothing
            ({**published, "publication": "no-such-publication", "pillar": "3"}, 2024),
            ({"catalogue": "hcmc-dti-districts", "version": "1.0"}, None),  # a catalogue never published
        ):
            assert_not_published_page(client.get("/dashboard", params=params, headers=HTML), period)
            api = {"period": period or 2024, "stage": "published", **params}
            assert client.get("/v1/rankings", params=api).status_code == 404  # as its JSON twin answers
        empty_period = client.get("/dashboard", params={**CAT, "period": ""}, headers=HTML)
        assert empty_period.status_code == 422, empty_period.text  # "period=" is no year: refused as the API refuses it


def test_the_published_ranking_page_shows_the_apis_figures_in_vietnamese(running: RunningSystem, history: int) -> None:
    with public(running) as client:
        page = client.get("/dashboard", params={**Q2024, "stage": "published"}, headers=HTML)
        api = client.get("/v1/rankings", params={**Q2024, "stage": "published"}).json()
    assert page.status_code == 200, page.text
    rows = table(page.text, "ranking")
    assert len(rows) == len(api["rankings"]) == 63
    shown = [(attrs["data-unit"], cells[0], cells[1], cells[3]) for attrs, cells in rows]
    expected = [(row["unit_id"], row["rank_label"], row["unit_name_vi"], vi(row["total"])) for row in api["rankings"]]
    assert shown == expected
    # 2024 verified: gia-lai 1.6 10 + 1.3 5 = 15; da-nang 1.6 10 + 3.2 10 = 20; binh-dinh nothing verified
    assert shown[:2] == [("da-nang", "1/63", "Đà Nẵng", "20,00"), ("gia-lai", "2/63", "Gia Lai", "15,00")]
    assert ("binh-dinh", "3/63", "Bình Định", "0,00") in shown  # tied with the 60 silent provinces
    by_unit = {attrs["data-unit"]: cells for attrs, cells in rows}
    # since the published 2023 (all three 10, tied 1/63): da-nang =, +10; gia-lai ▼1, +5; binh-dinh ▼2, −10
    assert by_unit["da-nang"][-3:-1] == ["=", "+10,00"]
    assert by_unit["gia-lai"][-3:-1] == ["▼1", "+5,00"]
    assert by_unit["binh-dinh"][-3:-1] == ["▼2", "−10,00"]
    # the pillar columns are the API's pillars, in Vietnamese format
    assert by_unit["da-nang"][4:12] == [vi(api["rankings"][0]["pillars"][code]) for code in "12345678"]
    # the charts are drawn on the server: one bar per unit, one cell per unit × pillar; no script, no inline style
    assert page.text.count('<g class="bar">') == 63
    heat = page.text.split('<svg class="heat"', 1)[1].split("</svg>", 1)[0]
    assert heat.count("<rect") == 63 * 8
    assert "<title>Đà Nẵng · 1: 10,00 / 100</title>" in heat  # each cell says its points of the pillar's max
    assert "<script" not in page.text and "style=" not in page.text
    assert (
        'href="/v1/rankings.csv?catalogue=vn-dti-province&amp;version=1.0&amp;period=2024&amp;stage=published'
        in page.text
    )
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "style-src 'self'" in policy and "unsafe-inline" not in policy
    assert "script-src" not in policy


def test_the_english_switch_and_the_pillar_picker(running: RunningSystem, history: int) -> None:
    with public(running) as client:
        english = client.get("/dashboard", params={**Q2024, "stage": "published", "lang": "en"}, headers=HTML)
        by_pillar = client.get("/dashboard", params={**Q2024, "stage": "published", "pillar": "3"}, headers=HTML)
        api = client.get("/v1/rankings", params={**Q2024, "stage": "published", "pillar": "3"}).json()
    assert english.status_code == 200 and '<html lang="en">' in english.text and "Rankings" in english.text
    first = table(english.text, "ranking")[0][1]
    assert first[:4] == ["1/63", "Da Nang", "48", "20.00"]
    assert 'lang="vi">Tiếng Việt</a>' in english.text
    rows = table(by_pillar.text, "ranking")
    assert [(a["data-unit"], c[0], c[3]) for a, c in rows] == [
        (row["unit_id"], row["rank_label"], vi(row["pillars"]["3"])) for row in api["rankings"]
    ]
    assert 'value="3" selected' in by_pillar.text


def login(running: RunningSystem, secret: str) -> str:
    """Logs in through the form; returns the Cookie header a browser would send afterwards."""
    with public(running) as client:
        form = client.get("/dashboard/login", headers=HTML)
        csrf = cookie_value(form, "kpi_dashboard_csrf")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None and token.group(1) == csrf
        cookies = f"kpi_dashboard_csrf={csrf}"
        done = client.post(
            "/dashboard/login",
            data={"key": secret, "csrf": csrf, "next": "/dashboard"},
            headers={**HTML, "Cookie": cookies},
        )
    assert done.status_code == 303, done.text
    return f"{cookies}; kpi_dashboard_key={cookie_value(done, 'kpi_dashboard_key')}"


def cookie_value(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header.split(";", 1)[0].split("=", 1)[1].strip('"')
    raise AssertionError(f"no {name} cookie set: {response.headers}")


def set_cookie(response: httpx.Response, name: str) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}="))


def test_the_login_keeps_the_key_in_a_secure_cookie_behind_a_csrf_token(running: RunningSystem, history: int) -> None:
    with public(running) as client:
        form = client.get("/dashboard/login", headers=HTML)
        guard = set_cookie(form, "kpi_dashboard_csrf").lower()
        assert all(part in guard for part in ("httponly", "secure", "samesite=strict", "path=/dashboard"))
        csrf = cookie_value(form, "kpi_dashboard_csrf")
        secret = running.keys["evaluator"]
        with_cookie = {**HTML, "Cookie": f"kpi_dashboard_csrf={csrf}"}
        for data, headers in (
            ({"key": secret}, with_cookie),  # no token in the form
            ({"key": secret, "csrf": "x" * 43}, with_cookie),  # a token that is not the cookie's
            ({"key": secret, "csrf": csrf}, HTML),  # no cookie
            ({"key": secret, "csrf": csrf}, {**with_cookie, "Origin": "https://elsewhere.example"}),
        ):
            refused = client.post("/dashboard/login", data=data, headers=headers)
            assert refused.status_code == 400, refused.text
            assert "kpi_dashboard_key" not in refused.headers.get("set-cookie", "")
        bad = client.post("/dashboard/login", data={"key": "kpi_nobody_x", "csrf": csrf}, headers=with_cookie)
        assert bad.status_code == 401 and "kpi_dashboard_key" not in bad.headers.get("set-cookie", "")
        done = client.post(
            "/dashboard/login", data={"key": secret, "csrf": csrf, "next": "https://evil.example/"}, headers=with_cookie
        )
        assert done.status_code == 303 and done.headers["location"] == "/dashboard"  # never to another site
        session = set_cookie(done, "kpi_dashboard_key").lower()
        assert all(part in session for part in ("httponly", "secure", "samesite=lax", "path=/dashboard"))
        cookies = f"kpi_dashboard_csrf={csrf}; kpi_dashboard_key={cookie_value(done, 'kpi_dashboard_key')}"
        unpublished = client.get(
            "/dashboard", params={**Q2024, "stage": "verification"}, headers={**HTML, "Cookie": cookies}
        )
        assert unpublished.status_code == 200 and "private, no-store" in unpublished.headers["cache-control"]
        out = client.post("/dashboard/logout", data={"csrf": csrf}, headers={**HTML, "Cookie": cookies})
        assert out.status_code == 303 and 'kpi_dashboard_key=""' in set_cookie(out, "kpi_dashboard_key")


# every page and its JSON twin: the dashboard must answer each caller as the API does
TWINS = [
    ("/dashboard", "/v1/rankings", {**Q2024, "stage": "verification"}),
    ("/dashboard", "/v1/rankings", {**Q2024, "stage": "published"}),
    ("/dashboard/rankings.csv", "/v1/rankings.csv", {**Q2024, "stage": "self_assessment"}),
    ("/dashboard/units/{unit}", "/v1/units/{unit}/scorecard", {**Q2024, "stage": "self_assessment"}),
    ("/dashboard/units/{unit}", "/v1/units/{unit}/scorecard", {**Q2024, "stage": "published"}),
    ("/dashboard/units/{unit}/scorecard.csv", "/v1/units/{unit}/scorecard.csv", {**Q2024, "stage": "verification"}),
    ("/dashboard/units/{unit}/trend", "/v1/units/{unit}/trend", {**CAT, "stage": "self_assessment"}),
    ("/dashboard/units/{unit}/history", "/v1/units/{unit}/history", {**Q2024, "stage": "published"}),
    # the downloads are read and refused as their page and their JSON twin are
    ("/dashboard/rankings.xlsx", "/v1/rankings.xlsx", {**Q2024, "stage": "verification"}),
    ("/dashboard/units/{unit}/scorecard.xlsx", "/v1/units/{unit}/scorecard.xlsx", {**Q2024, "stage": "published"}),
    ("/dashboard/units/{unit}/trend", "/v1/units/{unit}/trend", {**CAT, "stage": "verification", "indicator": "1.3"}),
    ("/dashboard/units/{unit}/history", "/v1/units/{unit}/history", {**Q2024, "download": "history.xlsx"}),
]
CALLERS = [None, "gia-lai", "da-nang", "evaluator", "approver", "auditor", "admin"]


def cases() -> Iterator[Any]:
    for page, api, params in TWINS:
        for unit in ("gia-lai", "da-nang") if "{unit}" in page else (None,):
            yield pytest.param(page, api, params, unit, id=f"{page}?{params.get('stage')}|{unit}")


@pytest.mark.parametrize(("page", "api", "params", "unit"), list(cases()))
def test_each_page_answers_every_caller_as_its_json_twin(
    running: RunningSystem, history: int, page: str, api: str, params: dict[str, Any], unit: str | None
) -> None:
    logged_in = {caller: login(running, running.keys[caller]) for caller in CALLERS if caller}
    with public(running) as client:
        for caller in CALLERS:
            bearer = {"Authorization": f"Bearer {running.keys[caller]}"} if caller else {}
            cookie = {"Cookie": logged_in[caller]} if caller else {}
            want = client.get(api.replace("{unit}", unit or ""), params=params, headers=bearer).status_code
            got = client.get(page.replace("{unit}", unit or ""), params=params, headers={**HTML, **cookie})
            assert got.status_code == want, f"{page} {params} {unit} as {caller}: {got.status_code}, API {want}"
            if want == 401:  # a browser is offered the login form
                assert 'action="/dashboard/login"' in got.text
            plain = client.get(page.replace("{unit}", unit or ""), params=params, headers=bearer)
            assert plain.status_code == want  # an API client (no text/html) is answered the same
            if want in (401, 403):
                assert plain.headers["content-type"] == "application/problem+json"


def test_the_scorecard_page_shows_both_stages_the_gap_the_reason_and_where_the_points_are(
    running: RunningSystem, history: int
) -> None:
    params = {**Q2024, "stage": "verification"}
    cookie = {"Cookie": login(running, running.keys["gia-lai"])}
    with public(running) as client:
        page = client.get("/dashboard/units/gia-lai", params=params, headers={**HTML, **cookie})
        card = client.get(
            "/v1/units/gia-lai/scorecard", params=params, headers={"Authorization": f"Bearer {running.keys['gia-lai']}"}
        ).json()
    assert page.status_code == 200, page.text
    rows = {attrs["data-code"]: cells for attrs, cells in table(page.text, "card")}
    # code, name, points, max, missing, status, self-assessed, verified, gap, reason, agency, deadline
    directives = rows["1.3"]
    assert directives[2:9] == ["5,00", "10", "5,00", "Đã chấm", "7,50", "5,00", "−2,50"]
    assert directives[9] == f"Điều chỉnh: {REASON}"
    assert rows["1.1"][5] == "Thiếu dữ liệu"
    assert rows["1"][2] == vi(next(p for p in card["pillars"] if p["code"] == "1")["points"])
    gain = [cells for _, cells in table(page.text, "gain")]
    expected = views.points_to_gain(card)
    assert [cells[0] for cells in gain] == [node["code"] for node in expected]
    assert [cells[2] for cells in gain] == [vi(node["points_missing"]) for node in expected]
    missing = [Decimal(node["points_missing"]) for node in expected]
    assert missing == sorted(missing, reverse=True) and len(missing) > 50
    assert 'href="/dashboard/units/gia-lai/scorecard.csv?catalogue=vn-dti-province' in page.text


def test_trend_history_and_publications_pages_show_what_the_api_answers(running: RunningSystem, history: int) -> None:
    admin = {"Authorization": f"Bearer {running.keys['admin']}"}
    with public(running) as client:
        trend = client.get("/dashboard/units/gia-lai/trend", params={**CAT, "stage": "published"}, headers=HTML)
        api_trend = client.get("/v1/units/gia-lai/trend", params={**CAT, "stage": "published"}).json()
        log = client.get("/dashboard/units/gia-lai/history", params=Q2024, headers={**HTML, **admin})
        api_log = client.get("/v1/units/gia-lai/history", params={**Q2024, "limit": 1000}, headers=admin).json()
        listed = client.get("/dashboard/publications", params=Q2024, headers=HTML)
        csv = client.get("/dashboard/rankings.csv", params={**Q2024, "stage": "verification"}, headers=admin)
        api_csv = client.get("/v1/rankings.csv", params={**Q2024, "stage": "verification"}, headers=admin)
    assert trend.status_code == 200
    shown = [(a["data-period"], c[2], c[3], c[4], c[5]) for a, c in table(trend.text, "trend")]
    assert shown == [
        (
            str(p["period"]),
            p["lines"][0]["rank_label"],
            vi(p["lines"][0]["total"]),
            vi(p["peer_median"]),
            vi(p["peer_best"]),
        )
        for p in api_trend["periods"]
    ]
    assert [row[0] for row in shown] == ["2023", "2024"]
    assert trend.text.count('<svg class="lines"') == 1 + 8  # the total and each scored pillar
    assert log.status_code == 200
    assert [a["data-sequence"] for a, _ in table(log.text, "history")] == [str(e["sequence"]) for e in api_log]
    assert REASON in log.text and "a = Có" in log.text  # 1.6's yes, in words
    assert listed.status_code == 200
    assert len(table(listed.text, "publications")) == 1  # one publication of 2024
    assert csv.status_code == 200 and csv.content == api_csv.content


def test_the_stylesheet_is_served_and_other_routes_keep_their_policy(running: RunningSystem) -> None:
    with public(running) as client:
        css = client.get("/dashboard/static/dashboard.css")
        assert (
            css.status_code == 200 and css.headers["content-type"].startswith("text/css") and "@media print" in css.text
        )
        assert client.get("/dashboard/static/nothing.js").status_code == 404
        api = client.get("/healthz")
        assert api.headers["content-security-policy"].startswith("default-src 'none'")
        assert "form-action 'none'" in api.headers["content-security-policy"]


def from_vi(shown: str) -> Decimal | None:
    """A number as the dashboard writes it in Vietnamese ("1.234,50", "−2,50"), back to a Decimal."""
    if shown in ("–", ""):
        return None
    return Decimal(shown.replace(".", "").replace(",", ".").replace("−", "-"))


def every_units_points(client: httpx.Client, period: int, code: str) -> dict[str, Decimal]:
    """Each ranked unit's points in one indicator, as the API's SDMX export (every unit's scores) answers."""
    found = client.get("/v1/rankings.sdmx.csv", params={**CAT, "period": period, "stage": "published"})
    assert found.status_code == 200, found.text
    lines = [line.split(",") for line in found.text.splitlines()]
    columns = {name: index for index, name in enumerate(lines[0])}
    return {
        row[columns["UNIT"]]: Decimal(row[columns["OBS_VALUE"]] or "0")
        for row in lines[1:]
        if row[columns["INDICATOR"]] == code
    }


def test_the_trend_of_any_indicator_shows_its_points_over_every_period_with_the_peer_median_and_best(
    running: RunningSystem, history: int
) -> None:
    import statistics

    params = {**CAT, "stage": "published", "indicator": "1.3"}
    with public(running) as client:
        page = client.get("/dashboard/units/gia-lai/trend", params=params, headers=HTML)
        everyone = {period: every_units_points(client, period, "1.3") for period in (2023, 2024)}
        cards = {
            period: client.get("/v1/units/gia-lai/scorecard", params={**CAT, "period": period, "stage": "published"})
            for period in (2023, 2024)
        }
        unknown = client.get("/dashboard/units/gia-lai/trend", params={**params, "indicator": "9.9"}, headers=HTML)
    assert page.status_code == 200, page.text
    assert 'value="1.3" selected' in page.text and '<svg class="lines"' in page.text
    assert page.text.count('<svg class="lines"') == 1 + 1 + 8  # the indicator, the total, each pillar
    rows = [(a["data-period"], a["data-unit"], c) for a, c in table(page.text, "indicator-trend")]
    assert [(period, unit) for period, unit, _ in rows] == [("2023", "gia-lai"), ("2024", "gia-lai")]
    for period, _, cells in rows:
        points = everyone[int(period)]
        card = cards[int(period)].json()
        component = next(
            child for pillar in card["pillars"] for child in pillar.get("children", []) if child["code"] == "1.3"
        )
        assert from_vi(cells[2]) == Decimal(component["points"])  # the scorecard's points, as published
        assert len(points) == 63
        assert from_vi(cells[5]) == statistics.median(points.values())
        assert from_vi(cells[6]) == max(points.values())
    assert rows[1][2][2] == "5,00" and rows[1][2][6] == "5,00"  # 2024: verified 5 (adjusted from 7.5), the best
    assert unknown.status_code == 422 and "9.9" in unknown.text


def test_each_audit_trail_row_shows_the_score_it_left_as_scoring_explains_it(
    running: RunningSystem, history: int
) -> None:
    admin = {"Authorization": f"Bearer {running.keys['admin']}"}
    with public(running) as client:
        page = client.get("/dashboard/units/gia-lai/history", params=Q2024, headers={**HTML, **admin})
        entries = client.get("/v1/units/gia-lai/history", params={**Q2024, "limit": 1000}, headers=admin).json()
    assert page.status_code == 200, page.text
    shown = {attrs["data-sequence"]: cells for attrs, cells in table(page.text, "history")}
    measured = [entry for entry in entries if entry.get("stage")]
    assert len(measured) >= 5  # three self-assessments, 1.6 accepted, 1.3 adjusted
    for entry in measured:
        scope = {**Q2024, "stage": entry["stage"], "as_of": entry["sequence"]}
        explained = running.scoring.get(f"/v1/units/gia-lai/scores/{entry['indicator']}", params=scope)
        assert explained.status_code == 200, explained.text
        score = explained.json()
        cell = shown[str(entry["sequence"])][-1]
        assert cell.startswith(f"{vi(score['points'])} / {vi(score['max_points'])}"), (entry, cell)
        assert score["explanation"]["formula"] and score["explanation"]["formula"] in cell
    adjusted = next(e for e in measured if e["stage"] == "verification" and e["indicator"] == "1.3")
    assert shown[str(adjusted["sequence"])][-1].startswith("5,00 / 10")
    assert "/v1/events/" not in page.text  # no other service's address is configured: no link leaves reporting


def test_every_table_downloads_as_csv_and_xlsx_from_its_own_page(running: RunningSystem, history: int) -> None:
    import io

    import openpyxl

    admin = {"Authorization": f"Bearer {running.keys['admin']}"}
    pages = [
        ("/dashboard/units/gia-lai", {**Q2024, "stage": "verification"}, "gain", "gain"),
        ("/dashboard/units/gia-lai/trend", {**CAT, "stage": "published", "indicator": "1.3"}, "trend", "trend"),
        ("/dashboard/units/gia-lai/trend", {**CAT, "stage": "published", "indicator": "1.3"}, "indicator",
         "indicator-trend"),
        ("/dashboard/units/gia-lai/history", Q2024, "history", "history"),
        ("/dashboard/publications", Q2024, "publications", "publications"),
    ]  # fmt: skip
    with public(running) as client:
        for path, params, name, table_class in pages:
            page = client.get(path, params=params, headers={**HTML, **admin})
            assert page.status_code == 200, page.text
            assert f"download={name}.csv" in page.text and f"download={name}.xlsx" in page.text, name
            shown = table(page.text, table_class)
            csv_file = client.get(path, params={**params, "download": f"{name}.csv"}, headers=admin)
            assert csv_file.status_code == 200 and csv_file.headers["content-type"].startswith("text/csv"), name
            assert len(csv_file.text.lstrip("\ufeff").splitlines()) == 1 + len(shown), name
            workbook = client.get(path, params={**params, "download": f"{name}.xlsx"}, headers=admin)
            assert workbook.status_code == 200, name
            sheet = openpyxl.load_workbook(io.BytesIO(workbook.content)).active
            assert sheet is not None and sheet.max_row == 1 + len(shown), name
        refused = client.get("/dashboard/publications", params={**Q2024, "download": "nothing.csv"}, headers=admin)
        assert refused.status_code == 404
        # the ranking's and the scorecard's workbooks behind the login are the API's own
        verified = {**Q2024, "stage": "verification"}
        for path in ("/rankings.xlsx", "/units/gia-lai/scorecard.xlsx"):
            answers = [client.get(prefix + path, params=verified, headers=admin) for prefix in ("/dashboard", "/v1")]
            assert [answer.status_code for answer in answers] == [200, 200]
            sheets = [openpyxl.load_workbook(io.BytesIO(answer.content)).active for answer in answers]
            cells = [list(sheet.iter_rows(values_only=True)) for sheet in sheets if sheet is not None]
            assert len(cells) == 2 and cells[0] == cells[1] and len(cells[0]) > 1, path
        ranking = client.get("/dashboard", params={**Q2024, "stage": "published"}, headers=HTML)
        assert 'href="/v1/rankings.xlsx?catalogue=vn-dti-province' in ranking.text
