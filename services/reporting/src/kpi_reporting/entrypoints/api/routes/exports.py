"""CSV exports of rankings and scorecards, in the column order a spreadsheet user expects."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from kpi_common.access import PeriodReader, UnitReader
from kpi_common.scope import ScopeDep
from kpi_reporting import reports
from kpi_reporting.entrypoints.api.routes.reports import AsOfQuery, PillarQuery, PublicationQuery, ReportingDep

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


class CsvResponse(Response):
    media_type = "text/csv"


CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "UTF-8 CSV with a byte-order mark"}
}


def _csv(rows: list[list[Any]], filename: str) -> Response:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
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
    return _csv([header, *rows], f"rankings-{scope['catalogue_id']}-{scope['version']}-{scope['period']}.csv")


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
    rows: list[list[Any]] = [[title for _, title in SCORECARD_COLUMNS]]
    for node in _flatten(card["pillars"]):
        rows.append(
            ["; ".join(node[key]) if key == "cooperating_agencies" else node.get(key) for key, _ in SCORECARD_COLUMNS]
        )
    rows.append(
        ["", "Tổng (Total)", card["max_points"], card["total"], "", "", "", "", "", card["previous_period_total"]]
    )
    rows.append(["", "Đơn vị (Unit)", card["unit_id"], card.get("unit_name_vi")])
    return _csv(rows, f"scorecard-{unit}-{scope['catalogue_id']}-{scope['period']}.csv")
