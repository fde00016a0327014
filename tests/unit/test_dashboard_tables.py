"""A page's tables as downloads: the page's rows, numbers as the read models answer them, in CSV and XLSX;
a table the page has not is a 404."""

from __future__ import annotations

import io

import openpyxl
import pytest

from kpi_common.problems import Problem
from kpi_reporting.dashboard import tables

TREND = {
    "periods": [
        {"period": 2023, "peer_median": "0.00", "peer_best": "10.00",
         "lines": [{"relation": "self", "unit_id": "gia-lai", "unit_name_vi": "Gia Lai", "rank_label": "1/63",
                    "total": "10.00", "pillars": {"1": "10.00", "3": "0.00"}}]},
        {"period": 2024, "peer_median": "0.00", "peer_best": "20.00",
         "lines": [{"relation": "self", "unit_id": "gia-lai", "unit_name_vi": "Gia Lai", "rank_label": "2/63",
                    "total": "15.00", "pillars": {"1": "15.00", "3": "=1+1"}}]},
    ]
}  # fmt: skip


def test_the_trend_table_downloads_as_csv_with_the_pages_rows() -> None:
    answer = tables.download([tables.trend_table(TREND)], "trend.csv", "gia-lai-vn-dti-province")
    text = bytes(answer.body).decode()
    assert answer.headers["content-disposition"] == 'attachment; filename="trend-gia-lai-vn-dti-province.csv"'
    lines = text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("Năm (Period),Mã đơn vị (Unit id),Đơn vị (Unit)") and lines[0].endswith(",1,3")
    assert lines[1] == "2023,gia-lai,Gia Lai,self,1/63,10.00,0.00,10.00,10.00,0.00"
    assert len(lines) == 3


def test_a_downloaded_workbook_has_numbers_as_numbers_and_text_never_as_a_formula() -> None:
    answer = tables.download([tables.trend_table(TREND)], "trend.xlsx", "gia-lai")
    sheet = openpyxl.load_workbook(io.BytesIO(bytes(answer.body))).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[1][0] == 2023 and float(rows[1][5]) == 10.0  # type: ignore[arg-type]
    assert rows[2][-1] == "=1+1" and sheet.cell(3, 10).data_type == "s"


def test_a_table_the_page_has_not_is_not_found() -> None:
    with pytest.raises(Problem) as refused:
        tables.download([tables.trend_table(TREND)], "history.csv", "gia-lai")
    assert refused.value.status == 404


def test_the_history_table_carries_the_score_each_event_left() -> None:
    entry = {"sequence": 7, "event_id": "e-7", "recorded_at": "2025-01-01T00:00:00Z", "type": "t",
             "stage": "verification", "by": "evaluator", "indicator": "1.3", "inputs": {"a": 2, "b": 4},
             "decision": "adjusted", "reason": "2 of 4", "summary": ""}  # fmt: skip
    entry["explanation"] = {"points": "5.00", "formula": "2/4 × 10 = 5"}
    found = tables.history_table([entry])
    assert found.rows == [[7, "e-7", "2025-01-01T00:00:00Z", "t", "verification", "evaluator", "1.3", "a = 2; b = 4",
                           "adjusted", "2 of 4", "5.00", "2/4 × 10 = 5"]]  # fmt: skip
