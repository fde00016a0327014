"""The workbooks the dashboard links to (GET /v1/rankings.xlsx, /v1/units/{unit}/scorecard.xlsx), read back
by openpyxl: points as numbers, every other cell as the text it is, never a formula, never a refusal."""

from __future__ import annotations

import asyncio
import csv
import io
from decimal import Decimal
from fractions import Fraction
from typing import Any

import openpyxl
import pytest
from tests.conftest import fixture_catalogue

from kpi_common.as_of import AsOf
from kpi_core.catalogue import parse_catalogue
from kpi_core.ranking import rank_units
from kpi_core.scope import Scope
from kpi_core.scoring import unit_score_of
from kpi_reporting import reports, views
from kpi_reporting.entrypoints.api.routes import exports

HOSTILE = '=HYPERLINK("https://evil.example","x")'
SCOPE = Scope("mini-dti", "1.0", 2024, "self_assessment")


def read_back(content: bytes) -> Any:
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    return sheet


def scorecard_workbook(monkeypatch: pytest.MonkeyPatch, answer: dict[str, Any]) -> Any:
    """GET /v1/units/{unit}/scorecard.xlsx's own function, over a scorecard as the read model answers it."""

    async def scorecard(*_: Any) -> dict[str, Any]:
        return answer

    monkeypatch.setattr(reports, "scorecard", scorecard)
    call = exports.export_scorecard_xlsx(reader=None, unit=answer["unit_id"], scope=SCOPE, reporting=None)  # type: ignore[arg-type]
    return read_back(bytes(asyncio.run(call).body))


def ranking_workbook(monkeypatch: pytest.MonkeyPatch, answer: dict[str, Any]) -> Any:
    """GET /v1/rankings.xlsx's own function, over a ranking as the read model answers it."""

    async def rankings(*_: Any) -> dict[str, Any]:
        return answer

    monkeypatch.setattr(reports, "rankings", rankings)
    call = exports.export_rankings_xlsx(reader=None, scope=SCOPE, reporting=None)  # type: ignore[arg-type]
    return read_back(bytes(asyncio.run(call).body))


def node(code: str, name: str, points: str | None, agency: str | None = None) -> dict[str, Any]:
    return {"code": code, "name_vi": name, "max_points": "10", "points": points, "points_missing": "5",
            "status": "scored", "lead_agency": agency, "cooperating_agencies": ["+Sở Tài chính", "-x"],
            "deadline": None}  # fmt: skip


def card(unit_id: str, name: str, component: str = "a\x07b\x1fc") -> dict[str, Any]:
    return {
        "unit_id": unit_id,
        "unit_name_vi": name,
        "max_points": "20",
        "total": "5.00",
        "previous_period_total": None,
        "pillars": [{**node("1", "@SUM(A1)", "5.00", HOSTILE), "children": [node("1.1", component, "5.00")]}],
    }


def test_the_scorecard_workbook_keeps_the_unit_id_as_text_in_the_code_column(monkeypatch: pytest.MonkeyPatch) -> None:
    sheet = scorecard_workbook(monkeypatch, card("01", "=1+1", "Trưởng ban"))
    rows = list(sheet.iter_rows(values_only=True))
    total, unit = rows[-2], rows[-1]
    assert total[1:4] == ("Tổng (Total)", 20, 5)  # the total under Max and Points, as numbers
    assert unit[:4] == ("01", "Đơn vị (Unit): =1+1", None, None)  # "01", not 1; nothing under Max, Points
    assert all(cell.data_type == "s" for cell in sheet[sheet.max_row] if cell.value is not None)


def test_text_that_looks_like_a_formula_stays_text_and_control_characters_do_not_refuse_the_sheet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sheet = scorecard_workbook(monkeypatch, card("gia-lai", "Gia Lai"))
    pillar, component = sheet[2], sheet[3]
    by_key = {key: index for index, (key, _) in enumerate(exports.SCORECARD_COLUMNS)}
    name, agency = pillar[by_key["name_vi"]], pillar[by_key["lead_agency"]]
    assert (name.value, name.data_type, name.quotePrefix) == ("@SUM(A1)", "s", True)
    assert (agency.value, agency.data_type, agency.quotePrefix) == (HOSTILE, "s", True)
    assert pillar[by_key["cooperating_agencies"]].value == "+Sở Tài chính; -x"
    assert pillar[by_key["cooperating_agencies"]].data_type == "s"
    assert component[by_key["name_vi"]].value == "a\ufffdb\ufffdc"  # BEL and US replaced, the rest kept
    assert Decimal(str(component[by_key["points"]].value)) == Decimal("5.00")
    assert not any(cell.data_type == "f" for row in sheet.iter_rows() for cell in row)


def test_the_ranking_workbook_writes_ids_names_and_labels_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    found = {
        "pillars": [{"code": "1", "name_vi": "=Nhận thức"}],
        "rankings": [
            {
                "rank_label": "1/2",
                "unit_id": "01",
                "unit_name_vi": "-Quận\x0b1",
                "total": "-2.50",
                "pillars": {"1": "3"},
            },
            {"rank_label": "2/2", "unit_id": "=2", "unit_name_vi": None, "total": "0.00", "pillars": {"1": None}},
        ],
    }
    sheet = ranking_workbook(monkeypatch, found)
    got = list(sheet.iter_rows(values_only=True))
    assert got[0][4] == "1. =Nhận thức"
    assert got[1][:3] == ("1/2", "01", "-Quận\ufffd1")
    assert Decimal(str(got[1][3])) == Decimal("-2.50") and got[1][4] == 3
    assert got[2][:3] == ("2/2", "=2", "=2")
    assert sheet["B3"].data_type == "s" and sheet["B3"].quotePrefix and sheet["C2"].quotePrefix


def two_units() -> Any:
    """The mini catalogue's period as the read model holds it: da-nang full on 1.1, gia-lai on 3.1."""

    catalogue = parse_catalogue(fixture_catalogue())
    points = {"da-nang": {"1": Fraction(10), "1.1": Fraction(10)}, "gia-lai": {"3": Fraction(5), "3.1": Fraction(5)}}
    totals = {"da-nang": Fraction(10), "gia-lai": Fraction(5)}
    scores = {unit: unit_score_of(catalogue, unit, {}, points[unit], totals[unit]) for unit in points}
    return views.PeriodResult(catalogue, 9, scores, rank_units(totals))


@pytest.mark.parametrize("stage", ["self_assessment", "published"])
def test_the_sdmx_export_reads_every_units_scores_once_not_a_scorecard_per_unit(
    monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    reads: list[tuple[Scope, AsOf | None, bool]] = []

    async def result(_: Any, scope: Scope, moment: AsOf | None, *, full: bool = False) -> Any:
        reads.append((scope, moment, full))
        return two_units()

    async def publication(*_: Any) -> dict[str, Any]:
        rows = [{"unit_id": "gia-lai"}, {"unit_id": "da-nang"}]  # as frozen: its own order
        return {"published_stage": "verification", "as_of_sequence": 7, "rankings": rows}

    async def one_by_one(*_: Any) -> dict[str, Any]:
        raise AssertionError("a scorecard read per unit")

    monkeypatch.setattr(reports, "result", result)
    monkeypatch.setattr(reports, "publication", publication)
    monkeypatch.setattr(reports, "scorecard", one_by_one)
    monkeypatch.setattr(reports, "rankings", one_by_one)
    scope = SCOPE.at_stage(stage)
    answer = asyncio.run(exports.export_scores_sdmx(reader=None, scope=scope, reporting=None))  # type: ignore[arg-type]
    table = list(csv.DictReader(io.StringIO(bytes(answer.body).decode())))
    published = stage == "published"
    read_stage = "verification" if published else "self_assessment"
    assert reads == [(SCOPE.at_stage(read_stage), AsOf(sequence=7) if published else None, True)]
    assert [row["UNIT"] for row in table if row["INDICATOR"] == "_T"] == (
        ["gia-lai", "da-nang"] if published else ["da-nang", "gia-lai"]
    )
    values = {(row["UNIT"], row["INDICATOR"]): (row["OBS_VALUE"], row["STAGE"]) for row in table}
    assert values[("da-nang", "1.1")] == ("10.00", stage) and values[("gia-lai", "3.1")] == ("5.00", stage)
    assert values[("gia-lai", "_T")] == ("5.00", stage) and len(table) == 2 * (1 + 6)  # total + 6 nodes each
