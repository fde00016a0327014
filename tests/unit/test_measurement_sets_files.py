"""Reading and writing set files safely: every row read counts against the row limit (a blank one too,
a declared dimension too), an XLSX that unpacks too large or holds an unreadable cell is refused as a
file, a file row meets the constraints of a JSON row, and no template cell is a formula."""

from __future__ import annotations

import csv
import io
import time
import zipfile

import openpyxl
import pytest
from openpyxl import Workbook

from kpi_common.problems import Problem
from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.measurement_sets import RowError, SetRow, SetScope
from kpi_core.set_files import TooManyRows, parse_rows, template_columns, template_rows
from kpi_ingest.adapters.catalogue_files import bundled_catalogue_documents
from kpi_ingest.adapters.set_files import (
    TooLargeUnpacked,
    UnreadableFile,
    load_table,
    read_table,
    template_csv,
    template_xlsx,
)
from kpi_ingest.config import SET_MAX_ROWS
from kpi_ingest.entrypoints.api.schemas import MeasurementSetIn
from kpi_ingest.entrypoints.api.set_bodies import SpooledBody, constrained, json_set, sniffed_media_type

SCOPE = SetScope("hcmc-dti-districts", "1.0", 2024)
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
HEADER = (
    '<row r="1"><c r="A1" t="inlineStr"><is><t>unit_id</t></is></c>'
    '<c r="B1" t="inlineStr"><is><t>indicator</t></is></c><c r="C1" t="inlineStr"><is><t>a</t></is></c></row>'
)


@pytest.fixture(scope="module")
def districts() -> Catalogue:
    return parse_catalogue(next(d for d in bundled_catalogue_documents() if d["id"] == "hcmc-dti-districts"))


def xlsx_with_sheet(sheet_data: str, dimension: str | None = None, extra: bytes = b"") -> bytes:
    """A real workbook whose first sheet's XML is replaced (what a hand-made or hostile file holds)."""
    workbook = Workbook()
    out = io.BytesIO()
    workbook.save(out)
    dimension_xml = f'<dimension ref="{dimension}"/>' if dimension else ""
    sheet = f'<worksheet xmlns="{MAIN}">{dimension_xml}<sheetData>{sheet_data}</sheetData></worksheet>'
    rewritten = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as source, zipfile.ZipFile(rewritten, "w") as target:
        for info in source.infolist():
            data = sheet.encode() + extra if info.filename == "xl/worksheets/sheet1.xml" else source.read(info)
            target.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
    return rewritten.getvalue()


def test_an_xlsx_declaring_a_billion_rows_is_refused_before_a_row_is_read() -> None:
    content = xlsx_with_sheet(HEADER, dimension="A1:C1000000000")
    assert len(content) < 10_000
    started = time.monotonic()
    with pytest.raises(TooManyRows) as refused:
        load_table(io.BytesIO(content), max_rows=1_000, max_unpacked_bytes=1_000_000)
    assert refused.value.limit == 1_000 and time.monotonic() - started < 5


def test_blank_rows_count_against_the_row_limit_in_an_xlsx_and_a_csv() -> None:
    far = '<row r="5000"><c r="A5000" t="inlineStr"><is><t>quan-1</t></is></c></row>'
    xlsx = xlsx_with_sheet(HEADER + far)  # no dimension: the reader yields the 4,998 rows between
    with pytest.raises(TooManyRows):
        load_table(io.BytesIO(xlsx), max_rows=1_000, max_unpacked_bytes=1_000_000)
    with pytest.raises(TooManyRows):
        list(read_table(io.BytesIO(b"unit_id,indicator\n" + b",\n" * 1_001), max_rows=1_000))
    assert list(read_table(io.BytesIO(b"unit_id,indicator\n" + b",\n" * 1_000), max_rows=1_000))


def test_the_pure_parse_counts_every_row_read_blank_ones_too(districts: Catalogue) -> None:
    blank = [(number, {"unit_id": None, "indicator": ""}) for number in range(2, 1_003)]
    with pytest.raises(TooManyRows):
        list(parse_rows(blank, districts, SCOPE, max_rows=1_000))
    assert list(parse_rows(blank[:1_000], districts, SCOPE, max_rows=1_000)) == []


def test_an_xlsx_that_unpacks_past_the_cap_is_refused_before_it_is_opened() -> None:
    content = xlsx_with_sheet(HEADER, extra=b" " * 2_000_000)  # compresses to a few KB
    assert len(content) < 50_000
    with pytest.raises(TooLargeUnpacked) as refused:
        load_table(io.BytesIO(content), max_rows=1_000, max_unpacked_bytes=1_000_000)
    assert refused.value.limit == 1_000_000


def test_an_unreadable_cell_makes_the_file_unreadable() -> None:
    bad = '<row r="2"><c r="A2" t="inlineStr"><is><t>quan-1</t></is></c><c r="C2" t="n"><v>abc</v></c></row>'
    with pytest.raises(UnreadableFile, match="XLSX"):
        load_table(io.BytesIO(xlsx_with_sheet(HEADER + bad)), max_rows=1_000, max_unpacked_bytes=1_000_000)


def test_a_file_row_meets_the_constraints_of_a_json_row(districts: Catalogue) -> None:
    cells = {"unit_id": "quan-1", "indicator": "1.1", "not_applicable_reason": "x"}
    short = next(parse_rows([(2, cells)], districts, SCOPE))
    assert constrained(short) == [RowError(2, "not_applicable_reason", "String should have at least 3 characters")]
    long = SetRow(3, "quan-1", "1.1", {}, "x" * 100_000)
    assert [error.field for error in constrained(long)] == ["not_applicable_reason"]
    named = SetRow(4, "u" * 101, "9" * 51, {"a": "1"})
    assert [(error.row, error.field) for error in constrained(named)] == [(4, "unit_id"), (4, "indicator")]
    fine = SetRow(5, "quan-1", "1.1", {"a": "deputy"}, None)
    assert constrained(fine) == [fine]


def test_a_body_without_a_media_type_is_recognised_by_its_first_bytes() -> None:
    assert sniffed_media_type(io.BytesIO(xlsx_with_sheet(HEADER))).endswith("spreadsheetml.sheet")
    assert sniffed_media_type(io.BytesIO(b'\n  {"rows": []}')) == "application/json"
    assert sniffed_media_type(io.BytesIO(b"unit_id,indicator\nquan-1,1.1\n")) == "text/csv"


HOSTILE = ['=HYPERLINK("http://evil","x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def test_no_template_cell_is_written_as_a_formula(districts: Catalogue) -> None:
    columns = template_columns(districts)
    rows = [
        {**row, "unit_id": HOSTILE[index % len(HOSTILE)]}
        for index, row in enumerate(template_rows(districts, 2024, [""]))
    ]
    lines = list(csv.reader(io.StringIO(template_csv(columns, rows).decode("utf-8-sig"))))
    units = [line[columns.index("unit_id")] for line in lines[1:]]
    assert all(unit.startswith("'") for unit in units) and units[0] == "'" + HOSTILE[0]
    sheet = openpyxl.load_workbook(io.BytesIO(template_xlsx(districts, columns, rows))).active
    assert sheet is not None
    cells = [sheet.cell(row=number, column=columns.index("unit_id") + 1) for number in range(2, len(rows) + 2)]
    assert [cell.data_type for cell in cells] == ["s"] * len(rows)
    assert cells[0].value == HOSTILE[0]


def test_a_json_set_holds_at_most_the_row_limit_and_more_is_413_naming_it() -> None:
    assert MeasurementSetIn.model_json_schema()["properties"]["rows"]["maxItems"] == SET_MAX_ROWS
    row = '{"unit_id":"quan-1","indicator":"1.1"}'
    raw = (
        '{"catalogue_id":"c","catalogue_version":"1","period":2024,"rows":['
        + ",".join([row] * (SET_MAX_ROWS + 1))
        + "]}"
    )
    with pytest.raises(Problem) as refused:
        json_set(SpooledBody(io.BytesIO(raw.encode()), "-", "application/json", {}))
    assert refused.value.status == 413 and "KPI_INGEST_SET_MAX_ROWS" in refused.value.detail
