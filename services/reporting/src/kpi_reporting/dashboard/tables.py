"""The pages' other tables as downloads (`?download=<table>.csv` or `.xlsx` on the page's own address, so
a download is read and refused exactly as its page is): the same rows as the page, the numbers as the read
models answer them ("812.45"), written by the API's own CSV and XLSX writers (text never a formula).

The ranking and the scorecard link to the API's exports instead (`/v1/rankings.csv`, `.xlsx` …).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import Response

from kpi_common.problems import Problem
from kpi_reporting.entrypoints.api.routes import exports

FORMATS = ("csv", "xlsx")
DOWNLOAD_PATTERN = "^[a-z_]{1,40}\\.(csv|xlsx)$"


@dataclass(frozen=True)
class Table:
    name: str  # the file's stem and the `download` parameter: "trend", "history" …
    header: list[str]
    rows: list[list[Any]]
    numeric: set[int] = field(default_factory=set)  # the columns written as numbers in a workbook


def download(tables: list[Table], asked: str, stem: str) -> Response:
    """The table `asked` ("history.csv") of a page, as CSV or XLSX; 404 for a table the page has not."""
    name, _, kind = asked.rpartition(".")
    found = next((table for table in tables if table.name == name), None)
    if found is None or kind not in FORMATS:
        raise Problem(404, "Not found", f"this page has no table {name}", [{"field": "download", "message": asked}])
    rows = [found.header, *found.rows]
    filename = f"{name}-{stem}.{kind}"
    if kind == "csv":
        return exports.csv_download(rows, filename)
    return exports.xlsx_download(name[:31], rows, filename, found.numeric)


def trend_table(trend: dict[str, Any]) -> Table:
    rows = [
        [point["period"], line["unit_id"], line.get("unit_name_vi") or line["unit_id"], line["relation"],
         line.get("rank_label"), line.get("total"), point["peer_median"], point["peer_best"],
         *(((line.get("pillars") or {}).get(code)) for code in _pillar_codes(trend))]
        for point in trend["periods"]
        for line in point["lines"]
    ]  # fmt: skip
    header = ["Năm (Period)", "Mã đơn vị (Unit id)", "Đơn vị (Unit)", "Quan hệ (Relation)", "Hạng (Rank)",
              "Tổng điểm (Total)", "Trung vị nhóm (Peer median)", "Cao nhất nhóm (Peer best)",
              *_pillar_codes(trend)]  # fmt: skip
    return Table("trend", header, rows, {0, *range(5, len(header))})


def _pillar_codes(trend: dict[str, Any]) -> list[str]:
    codes: dict[str, None] = {}
    for point in trend["periods"]:
        for line in point["lines"]:
            codes |= dict.fromkeys(line.get("pillars") or {})
    return list(codes)


def indicator_table(indicator: dict[str, Any]) -> Table:
    header = ["Năm (Period)", "Mã đơn vị (Unit id)", "Đơn vị (Unit)", "Quan hệ (Relation)", "Chỉ số (Indicator)",
              "Điểm (Points)", "Điểm tối đa (Max)", "Giá trị (Value)", "Trung vị nhóm (Peer median)",
              "Cao nhất nhóm (Peer best)"]  # fmt: skip
    rows = [
        [point["period"], line["unit_id"], line["name_vi"], line["relation"], indicator["code"], line["points"],
         indicator["max_points"], line["value"], point["peer_median"], point["peer_best"]]
        for point in indicator["periods"]
        for line in point["lines"]
    ]  # fmt: skip
    return Table("indicator", header, rows, {0, 5, 6, 7, 8, 9})


def gain_table(gain: list[dict[str, Any]]) -> Table:
    header = ["Mã (Code)", "Chỉ số (Indicator)", "Chỉ số chính (Pillar)", "Điểm còn thiếu (Points missing)",
              "Điểm tối đa (Max)", "Cơ quan chủ trì (Lead agency)", "Cơ quan phối hợp (Cooperating agencies)",
              "Thời hạn (Deadline)"]  # fmt: skip
    rows = [
        [node["code"], node.get("name_vi"), node.get("pillar"), node.get("points_missing"), node.get("max_points"),
         node.get("lead_agency"), "; ".join(node.get("cooperating_agencies") or []), node.get("deadline")]
        for node in gain
    ]  # fmt: skip
    return Table("gain", header, rows, {3, 4})


def information_table(information: dict[str, Any]) -> Table:
    rows = [[name, value] for name, value in information.items()]
    return Table("general_information", ["Thông tin (Item)", "Giá trị (Value)"], rows, {1})


def history_table(entries: list[dict[str, Any]]) -> Table:
    header = ["Số thứ tự (Sequence)", "Mã sự kiện (Event id)", "Thời điểm (When)", "Sự kiện (Event)",
              "Giai đoạn (Stage)", "Người thực hiện (By)", "Chỉ số (Indicator)", "Số liệu (Inputs)",
              "Quyết định (Decision)", "Lý do (Reason)", "Điểm (Points)", "Cách tính (Formula)"]  # fmt: skip
    rows = []
    for entry in entries:
        inputs = entry.get("inputs")
        shown = "; ".join(f"{name} = {value}" for name, value in inputs.items()) if inputs else entry["summary"]
        explained = entry.get("explanation") or {}
        rows.append(
            [entry["sequence"], entry["event_id"], entry["recorded_at"], entry["type"], entry.get("stage"),
             entry.get("by"), entry.get("indicator"), shown, entry.get("decision"),
             entry.get("reason") or entry.get("not_applicable_reason"), explained.get("points"),
             explained.get("formula")]
        )  # fmt: skip
    return Table("history", header, rows, {0, 10})


def publications_table(publications: list[dict[str, Any]], restated: dict[str, str]) -> Table:
    header = ["Công bố (Publication)", "Công bố lúc (Published at)", "Người phê duyệt (Approved by)",
              "Tại sự kiện (At event)", "Thay thế (Replaces)", "Được đính chính bởi (Restated by)",
              "Lý do (Reason)", "Công bố khi chưa đủ (Published incomplete)",
              "Thay đổi hạng (Ranks moved)"]  # fmt: skip
    rows = [
        [p["publication_id"], p["published_at"], p["published_by"], p["as_of_sequence"], p.get("replaces"),
         restated.get(p["publication_id"]), p.get("reason"), p.get("incomplete_reason"),
         "; ".join(f"{m['unit_id']}: {m.get('from_rank') or '–'} → {m.get('to_rank') or '–'}"
                   for m in p.get("moved", []))]
        for p in publications
    ]  # fmt: skip
    return Table("publications", header, rows, {3})
