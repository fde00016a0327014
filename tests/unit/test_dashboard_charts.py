"""The dashboard's charts as geometry (drawn as SVG on the server), and the read functions the pages
add to the read models: the change since the previous period and where the points are."""

from __future__ import annotations

from typing import Any

import pytest

from kpi_reporting import views
from kpi_reporting.dashboard.charts import bar_chart, heat_map, ink, line_chart, shade, share_of


def test_bars_are_scaled_to_the_max_one_row_each() -> None:
    chart = bar_chart([("Đà Nẵng", "500.00", None), ("Gia Lai", "250.00", None), ("Kon Tum", None, None)], "1000")
    plot = chart.plot_width
    assert [bar.width for bar in chart.bars] == [plot / 2, plot / 4, 0.0]
    assert [bar.y for bar in chart.bars] == [20, 38, 56]  # 14 high, 4 apart, under the axis
    assert chart.height == 20 + 3 * 18 + 4
    assert [value for _, value in chart.ticks] == ["0", "250", "500", "750", "1000"]
    assert chart.ticks[0][0] == chart.label_width and chart.ticks[-1][0] == chart.label_width + plot


def test_without_a_max_the_bars_scale_to_the_largest_and_all_zero_draws_nothing() -> None:
    chart = bar_chart([("A", "2", None), ("B", "8", None)], None)
    assert chart.bars[1].width == chart.plot_width and chart.bars[0].width == chart.plot_width / 4
    empty = bar_chart([("A", "0", None)], None)
    assert empty.bars[0].width == 0 and empty.ticks == ()


def test_a_heat_map_cell_is_shaded_by_its_share_of_the_pillars_max() -> None:
    chart = heat_map([("1", "100"), ("3", "150")], [("Gia Lai", ["17.50", "150"]), ("Kon Tum", [None, "0"])])
    (y0, label0, first), (y1, _, second) = chart.rows
    assert (label0, y0, y1) == ("Gia Lai", 22, 38)
    assert [cell.share for cell in first] == [0.175, 1.0]
    assert [cell.share for cell in second] == [None, 0.0]
    assert first[1].fill == "#0b3c7d" and second[1].fill == "#eef3fa" and second[0].fill == "#d9d9d9"
    assert [cell.x for cell in first] == [190, 246]
    assert [x for x, _, _ in chart.columns] == [218, 274]
    assert chart.width == 190 + 2 * 56 + 4


def test_shades_run_from_light_to_dark_and_text_stays_readable() -> None:
    assert shade(0.0) == "#eef3fa" and shade(1.0) == "#0b3c7d"
    assert shade(0.5) == "#7c98bc"
    assert (ink(0.2), ink(0.5), ink(0.9), ink(None)) == ("#000000", "#000000", "#ffffff", "#000000")
    assert share_of("200", "100") == 1.0 and share_of("-1", "10") == 0.0
    assert share_of("5", "0") is None and share_of(None, "10") is None


def test_a_line_runs_through_the_periods_with_data_and_breaks_at_a_gap() -> None:
    chart = line_chart(
        [2022, 2023, 2024],
        [("Gia Lai", "unit", {2022: "500", 2023: None, 2024: "1000"})],
        "1000",
        width=300,
        height=140,
        left=50,
        right=10,
        top=10,
        bottom=30,
    )
    (series,) = chart.series
    assert series.points == ((50.0, 60.0, 2022, "500"), (290.0, 10.0, 2024, "1000"))
    assert series.path == "M50.0 60.0 M290.0 10.0"  # no line drawn across 2023, which has no value
    assert [x for x, _ in chart.x_ticks] == [50, 170, 290]
    assert [(y, v) for y, v in chart.y_ticks] == [(110, "0"), (85, "250"), (60, "500"), (35, "750"), (10, "1000")]


def test_one_period_is_drawn_in_the_middle_and_connected_periods_as_one_path() -> None:
    single = line_chart([2024], [("best", "best", {2024: "20"})], None, width=200, left=0, right=0)
    assert single.series[0].points[0][0] == 100
    joined = line_chart([2023, 2024], [("x", "unit", {2023: "1", 2024: "2"})], "2", width=100, left=0, right=0)
    assert joined.series[0].path.startswith("M0.0 ") and " L100.0 " in joined.series[0].path


def ranking(rows: list[tuple[str, int, str, dict[str, str]]], pillar: str | None = None) -> dict[str, Any]:
    return {
        "pillar": pillar,
        "rankings": [
            {
                "unit_id": u,
                "rank": r,
                "rank_label": f"{r}/3",
                "unit_name_vi": u.title(),
                "unit_name_en": None,
                "total": total,
                "pillars": pillars,
            }
            for u, r, total, pillars in rows
        ],
    }


def test_the_change_since_the_previous_period_is_places_and_points() -> None:
    before = ranking([("gia-lai", 1, "30.00", {"1": "10"}), ("da-nang", 2, "20.00", {"1": "15"})])
    now = ranking([("da-nang", 1, "35.50", {"1": "15"}), ("gia-lai", 2, "30.00", {"1": "5"})])
    changes = views.changes_since(now, before, {})
    assert changes["da-nang"] == {
        "previous_rank_label": "2/3",
        "previous_points": "20.00",
        "rank_change": 1,
        "points_change": "15.50",
    }
    assert (changes["gia-lai"]["rank_change"], changes["gia-lai"]["points_change"]) == (-1, "0.00")
    by_pillar = views.changes_since({**now, "pillar": "1"}, {**before, "pillar": "1"}, {})
    assert by_pillar["gia-lai"]["points_change"] == "-5.00"
    assert views.changes_since(now, None, {}) == {}


def test_a_unit_created_by_a_merger_is_compared_with_nobody_and_names_its_predecessors() -> None:
    before = ranking([("gia-lai", 1, "30.00", {}), ("binh-dinh", 2, "20.00", {})])
    now = ranking([("gia-lai-2025", 1, "60.00", {})])
    changes = views.changes_since(now, before, {"gia-lai-2025": ["gia-lai", "binh-dinh"]})
    assert "rank_change" not in changes["gia-lai-2025"]
    assert [(p["unit_id"], p["rank_label"], p["points"]) for p in changes["gia-lai-2025"]["predecessors"]] == [
        ("gia-lai", "1/3", "30.00"),
        ("binh-dinh", "2/3", "20.00"),
    ]


@pytest.mark.parametrize("order", [1, -1])
def test_where_the_points_are_lists_the_leaves_short_of_their_max_largest_first(order: int) -> None:
    pillar: dict[str, Any] = {
        "code": "5",
        "points_missing": "40",
        "children": [
            {"code": "5.1", "points_missing": "10", "lead_agency": "Sở TT&TT"},
            {"code": "5.2", "points_missing": "0"},
            {
                "code": "5.12",
                "points_missing": "30",
                "children": [
                    {"code": "5.12.1", "points_missing": "20"},
                    {"code": "5.12.2", "points_missing": "10"},
                ],
            },
        ][::order],
    }
    done = {"code": "6", "points_missing": "0", "children": [{"code": "6.1", "points_missing": "0"}]}
    found = views.points_to_gain({"pillars": [pillar, done]})
    assert [(node["code"], node["points_missing"], node["pillar"]) for node in found] == [
        ("5.12.1", "20", "5"),
        ("5.1", "10", "5"),
        ("5.12.2", "10", "5"),
    ]
    assert found[1]["lead_agency"] == "Sở TT&TT" and "children" not in found[0]


def wcag_contrast(one: str, other: str) -> float:
    """WCAG 2.1's contrast ratio, computed here from its definition (not by the code under test)."""

    def luminance(colour: str) -> float:
        linear = []
        for i in (1, 3, 5):
            c = int(colour[i : i + 2], 16) / 255
            linear.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_every_heat_map_cell_keeps_its_text_at_a_contrast_of_at_least_4_5_to_1() -> None:
    shares: list[float | None] = [None, *(step / 100 for step in range(101))]
    weak = [(share, shade(share), ink(share)) for share in shares if wcag_contrast(shade(share), ink(share)) < 4.5]
    assert weak == []
