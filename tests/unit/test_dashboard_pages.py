"""The dashboard's pages rendered from read-model answers without a server: a line without names, and
where the points are when a pillar is short by itself."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from starlette.requests import Request
from tests.conftest import fixture_catalogue

from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.ranking import rank_units
from kpi_core.scope import Scope
from kpi_core.scoring import unit_score_of
from kpi_reporting import views
from kpi_reporting.dashboard import charts
from kpi_reporting.dashboard.reads import Choice
from kpi_reporting.dashboard.rendering import render


def page_request(path: str, query: str = "") -> Request:
    return Request({"type": "http", "method": "GET", "path": path, "query_string": query.encode(), "headers": []})


def choice(catalogue: Catalogue, stage: str = "published") -> Choice:
    return Choice(catalogue, [(catalogue.id, catalogue.title_vi)], [catalogue.version], [2023, 2024], 2024, stage)


@pytest.mark.parametrize(("lang", "named"), [("vi", "Gia Lai"), ("en", "Gia Lai")])
def test_a_trend_line_without_names_is_shown_by_its_unit_id(lang: str, named: str) -> None:
    """`reports.trend` writes a unit with no row in a period's ranking as {"unit_id", "status": "missing"}."""
    catalogue = parse_catalogue(fixture_catalogue())
    self_line: dict[str, Any] = {
        "relation": "self",
        "unit_id": "gia-lai",
        "unit_name_vi": "Gia Lai",
        "unit_name_en": None,
    }
    self_line |= {"rank_label": "1/2", "total": "10.00", "pillars": {"1": "10.00", "3": "0.00"}}
    missing: dict[str, Any] = {"relation": "predecessor", "unit_id": "kon-tum", "status": "missing"}
    trend: dict[str, Any] = {"unit_id": "gia-lai", "unit_name_vi": "Gia Lai", "unit_name_en": "Gia Lai"}
    trend["periods"] = [{"period": 2024, "units_ranked": 2, "peer_median": "5", "peer_best": "10",
                         "lines": [self_line, missing]}]  # fmt: skip
    series: list[tuple[str, str, dict[int, str | None]]] = [
        ("Gia Lai", "unit", {2024: "10.00"}),
        ("kon-tum", "predecessor", {2024: None}),
    ]
    context = {
        "choice": choice(catalogue),
        "unit_id": "gia-lai",
        "trend": trend,
        "total_chart": charts.line_chart([2024], series, "60"),
        "pillar_charts": [],
        "indicators": [],
        "indicator": None,
    }
    page = render(page_request("/dashboard/units/gia-lai/trend", f"lang={lang}"), "trend.html", context)
    body = bytes(page.body).decode()
    assert page.status_code == 200
    assert '<tr data-period="2024" data-unit="kon-tum">\n    <td>2024</td>\n    <td>kon-tum <small>' in body
    assert f"<td>{named}</td>" in body  # a named line keeps its name (English falls back to Vietnamese)


def test_a_pillar_name_falls_back_to_vietnamese_then_to_its_code() -> None:
    catalogue = parse_catalogue(fixture_catalogue())
    empty = {"choice": choice(catalogue), "picked_pillar": "3", "pillars": [], "empty": True}
    for pillar, shown in (
        ({"code": "3", "name_vi": "Hạ tầng số", "name_en": None}, "3. Hạ tầng số"),
        ({"code": "3"}, "3. 3"),
    ):
        page = render(page_request("/dashboard", "lang=en"), "rankings.html", {**empty, "pillar": pillar}, 404)
        assert f"<strong>{shown}</strong>" in bytes(page.body).decode()


def leaf_pillar_catalogue() -> Catalogue:
    """The mini catalogue with pillar 1 scored by its own rule: a pillar with no parts."""
    data = fixture_catalogue()
    data["nodes"] = [node for node in data["nodes"] if node.get("parent") != "1"]
    pillar = next(node for node in data["nodes"] if node["code"] == "1")
    pillar |= {"inputs": [{"name": "a", "type": "boolean"}], "rule": {"kind": "yes_no", "input": "a"}}
    return parse_catalogue(data)


def card_of(catalogue: Catalogue, node_points: dict[str, Fraction]) -> dict[str, Any]:
    """A scorecard as the read model answers it, for scores as scoring recorded them."""
    total = sum((points for code, points in node_points.items() if "." not in code), Fraction(0))
    score = unit_score_of(catalogue, "gia-lai", {}, node_points, total)
    result = views.PeriodResult(catalogue, 1, {"gia-lai": score}, rank_units({"gia-lai": total}))
    scope = Scope(catalogue.id, catalogue.version, 2024, "self_assessment")
    return views.scorecard_view(result, scope, "gia-lai", score, views.CardContext(), {})


def test_a_short_pillar_without_parts_is_where_the_points_are() -> None:
    # pillar 1 (20, no parts) scored 0; pillar 3 full: 3.1 and 3.2 have 20 each
    card = card_of(
        leaf_pillar_catalogue(), {"1": Fraction(0), "3": Fraction(40), "3.1": Fraction(20), "3.2": Fraction(20)}
    )
    found = views.points_to_gain(card)
    assert [(node["code"], node["points_missing"], node["pillar"]) for node in found] == [("1", "20.00", "1")]
    assert "children" not in found[0] and found[0]["name_vi"] == "Nhận thức số"


def test_a_pillar_whose_parts_are_short_is_listed_by_its_parts_only() -> None:
    card = card_of(
        leaf_pillar_catalogue(), {"1": Fraction(20), "3": Fraction(25), "3.1": Fraction(5), "3.2": Fraction(20)}
    )
    found = views.points_to_gain(card)
    assert [(node["code"], node["points_missing"], node["pillar"]) for node in found] == [("3.1", "15.00", "3")]


def history_context(catalogue: Catalogue) -> dict[str, Any]:
    entry = {"sequence": 41, "event_id": "e-41", "type": "vn.kpi.measurement.recorded.v1", "label": "ev_verification",
             "recorded_at": "2025-03-01T08:00:00Z", "by": "evaluator", "unit_id": "gia-lai", "indicator": "1.1",
             "stage": "verification", "inputs": {"a": 2, "b": 4}, "decision": "adjusted", "reason": "2 of 4",
             "summary": ""}  # fmt: skip
    entry["explanation"] = {"points": "5.00", "max_points": "10.00", "formula": "2/4 × 10 = 5"}
    unit = {"name_vi": "Gia Lai", "name_en": None}
    return {"choice": choice(catalogue, "self_assessment"), "unit_id": "gia-lai", "entries": [entry], "unit": unit}


def test_an_audit_trail_row_shows_the_formula_and_links_to_the_event_and_the_explanation_when_told_where() -> None:
    from starlette.applications import Starlette

    from kpi_reporting.dashboard.options import DashboardOptions

    catalogue = parse_catalogue(fixture_catalogue())
    request = page_request("/dashboard/units/gia-lai/history")
    plain = bytes(render(request, "history.html", history_context(catalogue)).body).decode()
    assert "5,00 / 10,00" in plain and '<code class="formula">2/4 × 10 = 5</code>' in plain
    assert "/v1/events/" not in plain and "/scores/" not in plain  # told nothing: no link leaves this service
    app = Starlette()
    app.state.dashboard = DashboardOptions(ingest_url="https://ingest.example/", scoring_url="https://scoring.example")
    request.scope["app"] = app
    linked = bytes(render(request, "history.html", history_context(catalogue)).body).decode()
    assert '<a href="https://ingest.example/v1/events/41" rel="external">41</a>' in linked
    explanation = (
        "https://scoring.example/v1/units/gia-lai/scores/1.1?catalogue=mini-dti&amp;version=1.0&amp;period=2024"
        "&amp;stage=verification&amp;as_of=41"
    )
    assert f'<a href="{explanation}" rel="external">' in linked
