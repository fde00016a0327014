"""Exports of rankings and scorecards: CSV and XLSX in the column order a spreadsheet user expects, and
every unit's points and inputs as SDMX-CSV 2.0 (the dataflows: `kpi_reporting.sdmx`, docs/sdmx.md).
No text cell of any of them is read as a formula by a spreadsheet program (`kpi_common.cells`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from kpi_common.access import PeriodReader, UnitReader, UnpublishedPeriodReader
from kpi_common.as_of import AsOf
from kpi_common.cells import inert, starts_a_formula
from kpi_common.problems import Problem
from kpi_common.scope import ScopeDep
from kpi_core.scope import Scope
from kpi_reporting import reports, sdmx, trends, views
from kpi_reporting.bootstrap import Reporting
from kpi_reporting.entrypoints.api.routes.reports import (
    AsOfQuery,
    CatalogueQuery,
    IndicatorQuery,
    PillarQuery,
    PublicationQuery,
    ReportingDep,
    TrendStageQuery,
    VersionQuery,
)

router = APIRouter(prefix="/v1", tags=["exports"])
SCORECARD_COLUMNS = [
    ("code", "Mã (Code)"),
    ("name_vi", "Chỉ số (Indicator)"),
    ("max_points", "Điểm tối đa (Max)"),
    ("points", "Điểm (Points)"),
    ("points_missing", "Điểm còn thiếu (Points missing)"),
    ("status", "Trạng thái (Status)"),
    ("self_assessed_points", "Tự đánh giá (Self-assessed)"),
    ("verified_points", "Kết quả đánh giá (Verified)"),
    ("gap", "Chênh lệch (Gap)"),
    ("previous_period_points", "Kỳ trước (Previous period)"),
    ("change", "Thay đổi (Change)"),
    ("lead_agency", "Cơ quan chủ trì (Lead agency)"),
    ("cooperating_agencies", "Cơ quan phối hợp (Cooperating agencies)"),
    ("deadline", "Thời gian hoàn thành (Deadline)"),
]


POINT_COLUMNS = {
    "max_points",
    "points",
    "points_missing",
    "self_assessed_points",
    "verified_points",
    "gap",
    "previous_period_points",
    "change",
}


class CsvResponse(Response):
    media_type = "text/csv"


CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "UTF-8 CSV with a byte-order mark"}
}


def csv_download(rows: list[list[Any]], filename: str) -> Response:
    """Every text cell that a spreadsheet program would read as a formula after a `'` (numbers as they are)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows([[inert(value) for value in row] for row in rows])
    # A byte-order mark so that spreadsheet programs read the Vietnamese text as UTF-8.
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/rankings.csv", response_class=CsvResponse, responses=CSV)
async def export_rankings(
    reader: PeriodReader,
    scope: ScopeDep,
    reporting: ReportingDep,
    as_of: AsOfQuery = None,
    pillar: PillarQuery = None,
    publication: PublicationQuery = None,
) -> Response:
    """The ranking as CSV: rank ("62/63"), unit, total, then each pillar."""
    found = await reports.rankings(reporting, scope, as_of, pillar, publication)
    header, rows = _ranking_table(found)
    return csv_download([header, *rows], f"rankings-{scope.catalogue_id}-{scope.version}-{scope.period}.csv")


def _ranking_table(found: dict[str, Any]) -> tuple[list[Any], list[list[Any]]]:
    """The ranking as a table: rank ("62/63"), unit, total, then each pillar."""
    first = found["rankings"][0]["pillars"] if found["rankings"] else {}
    pillars = [p["code"] for p in found.get("pillars", [])] or list(first)
    names = {p["code"]: f"{p['code']}. {p['name_vi']}" for p in found.get("pillars", [])}
    header = [
        "Hạng (Rank)",
        "Mã đơn vị (Unit id)",
        "Đơn vị (Unit)",
        "Tổng điểm (Total)",
        *(names.get(code, code) for code in pillars),
    ]
    rows = [
        [
            row["rank_label"],
            row["unit_id"],
            row.get("unit_name_vi") or row["unit_id"],
            row["total"],
            *(row["pillars"].get(code) for code in pillars),
        ]
        for row in found["rankings"]
    ]
    return header, rows


def _flatten(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        yield from _flatten(node.get("children", []))


@router.get("/units/{unit}/scorecard.csv", response_class=CsvResponse, responses=CSV)
async def export_scorecard(
    reader: UnitReader, unit: str, scope: ScopeDep, reporting: ReportingDep, as_of: AsOfQuery = None
) -> Response:
    """A unit's scorecard as CSV, one row per pillar and component in catalogue order."""
    card = await reports.scorecard(reporting, scope, unit, as_of)
    rows = _scorecard_table(card)
    return csv_download(rows, f"scorecard-{unit}-{scope.catalogue_id}-{scope.period}.csv")


def _scorecard_rows(card: dict[str, Any]) -> list[list[Any]]:
    """The header, one row per pillar and component, and the total under the Max and Points columns."""
    rows: list[list[Any]] = [[title for _, title in SCORECARD_COLUMNS]]
    for node in _flatten(card["pillars"]):
        rows.append(
            ["; ".join(node[key]) if key == "cooperating_agencies" else node.get(key) for key, _ in SCORECARD_COLUMNS]
        )
    rows.append(
        ["", "Tổng (Total)", card["max_points"], card["total"], "", "", "", "", "", card["previous_period_total"]]
    )
    return rows


def _scorecard_table(card: dict[str, Any]) -> list[list[Any]]:
    """The CSV's rows: the unit's id and name last, after its label (the CSV's layout, kept as it was)."""
    return [*_scorecard_rows(card), ["", "Đơn vị (Unit)", card["unit_id"], card.get("unit_name_vi")]]


def _scorecard_sheet(card: dict[str, Any]) -> list[list[Any]]:
    """The workbook's rows: the unit's id in the Code column and its name in the Indicator column (both
    text), never under Max and Points, whose cells are numbers."""
    name = card.get("unit_name_vi") or card["unit_id"]
    return [*_scorecard_rows(card), [card["unit_id"], f"Đơn vị (Unit): {name}"]]


TREND_HEADER = [
    "Năm (Period)",
    "Mã đơn vị (Unit id)",
    "Mã thống kê (Unit code)",
    "Đơn vị (Unit)",
    "Quan hệ (Relation)",
    "Mã chỉ số (Code)",
    "Chỉ số (Indicator)",
    "Điểm (Points)",
    "Điểm tối đa (Max)",
    "Trạng thái (Status)",
    "Giá trị (Value)",
    "Hạng (Rank)",
    "Trung vị nhóm (Peer median)",
    "Cao nhất nhóm (Peer best)",
]


@router.get("/units/{unit}/trend.csv", response_class=CsvResponse, responses=CSV)
async def export_trend(
    reader: UnitReader,
    unit: str,
    reporting: ReportingDep,
    catalogue: CatalogueQuery,
    version: VersionQuery,
    stage: TrendStageQuery = "self_assessment",
    indicator: IndicatorQuery = None,
) -> Response:
    """A unit's trend in one node (`indicator`; the total without it) as CSV: one row per period and unit
    standing for it (itself, or a predecessor or successor), with its points, rank and the peer median and best."""
    code = indicator or trends.TOTAL
    found = await trends.unit_trend(reporting, catalogue, version, stage, unit, code)
    rows = [TREND_HEADER, *trend_rows(found["indicator"])]
    return csv_download(rows, f"trend-{unit}-{catalogue}-{version}-{code}.csv")


def trend_rows(node: dict[str, Any]) -> list[list[Any]]:
    """A node's trend (`trends.node_trend`) as the CSV's rows, under TREND_HEADER."""
    return [
        [point["period"], line["unit_id"], line.get("unit_code"), line.get("unit_name_vi") or line["unit_id"],
         line["relation"], node["code"], node["name_vi"], line["points"], node["max_points"], line["status"],
         line["value"], line["rank_label"], point["peer_median"], point["peer_best"]]
        for point in node["periods"]
        for line in point["lines"]
    ]  # fmt: skip


XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSX: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        "description": "An XLSX workbook, one sheet",
    }
}


class XlsxResponse(Response):
    media_type = XLSX_MEDIA_TYPE


def xlsx_download(title: str, rows: list[list[Any]], filename: str, numeric: set[int]) -> Response:
    """One sheet; the cells of the `numeric` columns (points) as numbers, the rest (codes such as 3.3,
    ids such as 01, names, agencies) as text, never as a formula."""
    from openpyxl import Workbook  # here, not at the top: openpyxl (and numpy) was a tenth of the start
    from openpyxl.styles import Font

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        values = [_cell(value) if index in numeric else value for index, value in enumerate(row)]
        sheet.append([_text(value) if isinstance(value, str) else value for value in values])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # openpyxl makes "=…" a formula: here it stays the text it is
                if starts_a_formula(cell.value):
                    cell.quotePrefix = True  # and stays text when someone edits it
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    workbook.save(out)
    return Response(
        out.getvalue(),
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _text(value: str) -> str:
    """Text as a cell can hold it: the control characters XML 1.0 refuses (which openpyxl raises on)
    replaced by U+FFFD."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)


def _cell(value: Any) -> Any:
    """Points as numbers a spreadsheet can sum (exact decimals as the API shows them), the rest as text."""
    if isinstance(value, str):
        try:
            return Decimal(value) if value and value.replace(".", "", 1).lstrip("-").isdigit() else value
        except InvalidOperation:
            return value
    return value


@router.get("/rankings.xlsx", response_class=XlsxResponse, responses=XLSX)
async def export_rankings_xlsx(
    reader: PeriodReader,
    scope: ScopeDep,
    reporting: ReportingDep,
    as_of: AsOfQuery = None,
    pillar: PillarQuery = None,
    publication: PublicationQuery = None,
) -> Response:
    """The ranking as an XLSX workbook: the same columns as rankings.csv, points as numbers."""
    header, rows = _ranking_table(await reports.rankings(reporting, scope, as_of, pillar, publication))
    name = f"rankings-{scope.catalogue_id}-{scope.version}-{scope.period}.xlsx"
    return xlsx_download("Xep hang", [header, *rows], name, set(range(3, len(header))))


@router.get("/units/{unit}/scorecard.xlsx", response_class=XlsxResponse, responses=XLSX)
async def export_scorecard_xlsx(
    reader: UnitReader, unit: str, scope: ScopeDep, reporting: ReportingDep, as_of: AsOfQuery = None
) -> Response:
    """A unit's scorecard as an XLSX workbook: the same columns as scorecard.csv, points as numbers."""
    rows = _scorecard_sheet(await reports.scorecard(reporting, scope, unit, as_of))
    numeric = {index for index, (key, _) in enumerate(SCORECARD_COLUMNS) if key in POINT_COLUMNS}
    return xlsx_download("Bang diem", rows, f"scorecard-{unit}-{scope.catalogue_id}-{scope.period}.xlsx", numeric)


async def _every_card(reporting: Reporting, scope: Scope, as_of: str | None) -> list[dict[str, Any]]:
    """Each ranked unit's scorecard figures (points and statuses; no other stage, no previous period),
    in ranking order, from one read of every unit's scores (`full`) instead of one scorecard's reads
    per unit. A publication is read as `reports.scorecard` reads it: the stage it froze, at the
    sequence it froze, its own units in its order."""
    moment = AsOf.parse(as_of)
    if scope.stage == "published":
        published = await reports.publication(reporting, scope, moment, None, None)
        read = scope.at_stage(published["published_stage"])
        result = await reports.result(reporting, read, AsOf(sequence=published["as_of_sequence"]), full=True)
        units = [row["unit_id"] for row in published["rankings"]]
    else:
        read, result = scope, await reports.result(reporting, scope, moment, full=True)
        units = [row["unit_id"] for row in views.rankings_view(result, scope)["rankings"]]
    return [
        views.scorecard_view(result, read, unit, result.scores.get(unit), views.CardContext(), {}) for unit in units
    ]


@router.get("/rankings.sdmx.csv", response_class=CsvResponse, responses=CSV)
async def export_scores_sdmx(
    reader: PeriodReader, scope: ScopeDep, reporting: ReportingDep, as_of: AsOfQuery = None
) -> Response:
    """Every ranked unit's points (total, pillars, components) as SDMX-CSV 2.0, dataflow DF_KPI_SCORES."""
    cards = await _every_card(reporting, scope, as_of)
    counts: dict[str, int | None] = {}
    if any(node.get("event_id") for card in cards for node in _flatten(card["pillars"])):
        async with reporting.service.sessions() as session:
            counts = await sdmx.evidence_counts(session, scope)
    rows = [row for card in cards for row in sdmx.score_rows(card, scope, counts)]
    name = f"scores-{scope.catalogue_id}-{scope.version}-{scope.period}.sdmx.csv"
    return _sdmx_response(sdmx.sdmx_csv(sdmx.SCORE_COLUMNS, rows), name)


@router.get("/measurements.sdmx.csv", response_class=CsvResponse, responses=CSV)
async def export_inputs_sdmx(
    reader: UnpublishedPeriodReader, scope: ScopeDep, reporting: ReportingDep, as_of: AsOfQuery = None
) -> Response:
    """Every unit's latest inputs of each component, one observation per input, as SDMX-CSV 2.0, dataflow
    DF_KPI_INPUTS; at stage=published, the inputs of the stage the publication froze, as it froze them."""
    moment, stage = AsOf.parse(as_of), scope.stage
    if stage == "published":
        published = await reports.publication(reporting, scope, moment, None, None)
        moment, stage = AsOf(sequence=published["as_of_sequence"]), published["published_stage"]
    async with reporting.service.sessions() as session:
        if await reporting.catalogues.get(session, scope.catalogue_id, scope.version) is None:
            what = f"catalogue {scope.catalogue_id} version {scope.version}"
            raise Problem(404, "Not found", f"{what} is not known here")
        measurements = await sdmx.latest_measurements(session, scope, stage, moment)
        registry = await reporting.peer_groups.registry(session)
    rows = sdmx.input_rows(measurements, scope, registry)
    name = f"inputs-{scope.catalogue_id}-{scope.version}-{scope.period}.sdmx.csv"
    return _sdmx_response(sdmx.sdmx_csv(sdmx.INPUT_COLUMNS, rows), name)


def _sdmx_response(text: str, filename: str) -> Response:
    """SDMX-CSV: UTF-8 without a byte-order mark."""
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
