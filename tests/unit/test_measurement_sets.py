"""The pure parts of measurement sets: a spreadsheet row back to a measurement (labels, Có/Không,
the decimal comma and %), the set's decision (imported, replaced, unchanged, refused) and its summary."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import openpyxl
import pytest

from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.events import Evidence, MeasurementRecorded
from kpi_core.measurement_sets import (
    CheckedRow,
    RowError,
    SetDecision,
    SetRow,
    SetScope,
    SetSummary,
    check_rows,
    decide_set,
    same_statement,
)
from kpi_core.set_files import (
    category_labels,
    column_name,
    parse_row,
    scored_components,
    template_columns,
    template_rows,
)
from kpi_core.units import UnitRegistry, parse_peer_group
from kpi_ingest.adapters.catalogue_files import bundled_catalogue_documents, bundled_peer_group_documents
from kpi_ingest.adapters.set_files import UnreadableFile, read_table, template_csv, template_xlsx

SCOPE = SetScope("hcmc-dti-districts", "1.0", 2024)


@pytest.fixture(scope="module")
def districts() -> Catalogue:
    return parse_catalogue(next(d for d in bundled_catalogue_documents() if d["id"] == "hcmc-dti-districts"))


def row(cells: dict[str, Any], catalogue: Catalogue, number: int = 2) -> SetRow | RowError | None:
    return parse_row(number, cells, catalogue, SCOPE)


def test_a_header_names_its_column_in_its_last_parentheses() -> None:
    assert column_name("Mã đơn vị (unit_id)") == "unit_id"
    assert column_name("Ngày ban hành (YYYY-MM-DD) (evidence_date)") == "evidence_date"
    assert column_name(" a ") == "a"
    assert column_name(None) == ""


def test_shares_keep_the_decimal_comma_and_percent_for_the_measurement_check(districts: Catalogue) -> None:
    parsed = row({"unit_id": "quan-1", "indicator": "3.3", "a": "0,81"}, districts)
    assert isinstance(parsed, SetRow) and parsed.inputs == {"a": "0,81"}
    percent = row({"unit_id": "quan-1", "indicator": "3.3", "a": "81%"}, districts, 3)
    assert isinstance(percent, SetRow)
    checked, refused = check_rows([parsed, percent], SCOPE, districts, _registry(), "r")
    assert refused == [RowError(3, "indicator", "repeats row 2 (quan-1, 3.3)")]
    assert checked[0].event.inputs == {"a": "0.81"}
    alone, _ = check_rows([percent], SCOPE, districts, _registry(), "r")
    assert Decimal(alone[0].event.inputs["a"]) == Decimal("0.81")


def _registry() -> UnitRegistry:
    groups = {document["id"]: parse_peer_group(document) for document in bundled_peer_group_documents()}
    return UnitRegistry(groups)


def test_categories_are_read_from_their_vietnamese_labels(districts: Catalogue) -> None:
    node = districts.node("1.1")
    assert node is not None and node.inputs[0].type == "category"
    labels = category_labels(node.inputs[0], node.rule)
    assert labels["deputy"] == "Trưởng ban là Phó Bí thư/Phó Chủ tịch Quận/Huyện/Thành phố"
    for written in (labels["deputy"], labels["deputy"].upper(), "deputy", f"  {labels['deputy']} "):
        parsed = row({"unit_id": "quan-1", "indicator": "1.1", "a": written}, districts)
        assert isinstance(parsed, SetRow) and parsed.inputs == {"a": "deputy"}, written
    unknown = row({"unit_id": "quan-1", "indicator": "1.1", "a": "Ông Ba"}, districts)
    assert isinstance(unknown, SetRow)
    _, refused = check_rows([unknown], SCOPE, districts, _registry(), "r")
    assert refused[0].field == "inputs.a" and "must be one of" in refused[0].message


@pytest.mark.parametrize(
    ("written", "read"),
    [("Có", True), ("có", True), ("x", True), (True, True), ("Không", False), ("khong", False), (False, False)],
)
def test_yes_no_cells_read_co_and_khong(districts: Catalogue, written: Any, read: bool) -> None:
    yes_no = next(node for node in scored_components(districts) if node.inputs and node.inputs[0].type == "boolean")
    parsed = row({"unit_id": "quan-1", "indicator": yes_no.code, "a": written}, districts)
    assert isinstance(parsed, SetRow) and parsed.inputs["a"] is read


def test_a_row_of_another_period_is_refused_and_an_empty_template_row_reports_nothing(districts: Catalogue) -> None:
    other = row({"period": "2023", "unit_id": "quan-1", "indicator": "3.3", "a": "0.5"}, districts)
    assert other == RowError(2, "period", "this set is for 2024; a set holds one catalogue version and period")
    assert row({"period": 2024.0, "unit_id": "quan-1", "indicator": "3.3", "a": 0.5}, districts) is not None
    empty = {"unit_id": "quan-1", "indicator": "3.3", "name_vi": "Tỷ lệ", "inputs_vi": "a: …", "a": ""}
    assert row(empty, districts) is None
    assert row({"unit_id": "", "indicator": ""}, districts) is None
    assert row({"unit_id": "quan-1", "indicator": "", "a": "1"}, districts) == RowError(2, "indicator", "required")


def test_evidence_columns_become_one_document_and_a_bad_date_names_its_column(districts: Catalogue) -> None:
    cells = {"unit_id": "quan-1", "indicator": "3.3", "a": "0,5"}
    parsed = row(
        {**cells, "evidence_title": "Báo cáo", "evidence_number": "12/BC", "evidence_date": "2024-03-01"}, districts
    )
    assert isinstance(parsed, SetRow)
    assert parsed.evidence == (Evidence(title="Báo cáo", number="12/BC", date="2024-03-01"),)
    bad = row({**cells, "evidence_title": "Báo cáo", "evidence_date": "1/3/2024"}, districts)
    assert isinstance(bad, RowError) and bad.field == "evidence_date"


def event(unit: str, code: str, inputs: dict[str, str | bool], **extra: Any) -> MeasurementRecorded:
    return MeasurementRecorded(
        catalogue_id="hcmc-dti-districts",
        catalogue_version="1.0",
        period=2024,
        unit_id=unit,
        indicator=code,
        inputs=inputs,
        submitted_by="r",
        **extra,
    )


def test_a_set_decides_imported_replaced_unchanged_and_closed() -> None:
    checked = [
        CheckedRow(2, event("quan-1", "3.3", {"a": "0.450"})),
        CheckedRow(3, event("quan-1", "3.4", {"a": "1", "b": "2", "c": "1", "d": "1"})),
        CheckedRow(4, event("quan-3", "3.3", {"a": "0.5"})),
        CheckedRow(5, event("thu-duc", "3.3", {"a": "0.5"})),
    ]
    latest = {
        ("quan-1", "3.3"): event("quan-1", "3.3", {"a": "0.45"}),  # the same number
        ("quan-1", "3.4"): event("quan-1", "3.4", {"a": "2", "b": "2", "c": "1", "d": "1"}),
    }
    refused = [RowError(6, "indicator", "required")]
    decision = decide_set(checked, refused, latest, frozenset({"thu-duc"}))
    assert decision.unchanged == (2,)
    assert [(d.row, d.outcome) for d in decision.to_append] == [(3, "replaced"), (4, "imported")]
    assert [error.row for error in decision.refused] == [5, 6]
    assert decision.accepted == ()  # atomic: a refused row stores nothing
    partial = decide_set(checked, refused, latest, frozenset({"thu-duc"}), mode="partial")
    assert [d.row for d in partial.accepted] == [3, 4]
    summary = SetSummary.of(partial, stored=True)
    assert (summary.imported, summary.replaced, summary.unchanged, summary.refused) == (1, 1, 1, 2)


def test_the_same_statement_compares_numbers_claims_and_evidence() -> None:
    base = event("quan-1", "3.3", {"a": "0.45"})
    assert same_statement(base, event("quan-1", "3.3", {"a": "0.4500"}))
    assert not same_statement(base, event("quan-1", "3.3", {"a": "0.46"}))
    assert not same_statement(base, event("quan-1", "3.3", {"a": "0.45"}, evidence=(Evidence(title="Báo cáo"),)))
    assert same_statement(event("quan-1", "1.1", {"a": "deputy"}), event("quan-1", "1.1", {"a": "deputy"}))


def test_an_empty_decision_stores_nothing() -> None:
    assert SetDecision((), (), ()).accepted == ()


def test_the_template_has_a_row_per_scored_component_and_fills_back(districts: Catalogue) -> None:
    rows = list(template_rows(districts, 2024, ["quan-1"]))
    assert len(rows) == 51 == len(scored_components(districts))
    first = rows[0]
    assert (first["unit_id"], first["indicator"], first["period"]) == ("quan-1", "1.1", 2024)
    assert "Trưởng ban là Bí thư/Chủ tịch" in str(first["inputs_vi"]) and "[chọn một]" in str(first["inputs_vi"])
    columns = template_columns(districts)
    assert {"a", "b", "evidence_title", "not_applicable_reason"} <= set(columns)
    for content in (template_csv(columns, rows), template_xlsx(districts, columns, rows)):
        table = list(read_table(io.BytesIO(content)))
        assert [number for number, _ in table] == list(range(2, 53))
        assert all(row(cells, districts, number) is None for number, cells in table)  # nothing filled in yet


def test_a_filled_xlsx_reads_typed_cells(districts: Catalogue) -> None:
    columns = template_columns(districts)
    content = template_xlsx(districts, columns, template_rows(districts, 2024, ["quan-1"]))
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    sheet = workbook.active
    assert sheet is not None
    at = {name: index + 1 for index, name in enumerate(columns)}
    sheet.cell(row=2, column=at["a"]).value = "Trưởng ban là Bí thư/Chủ tịch Quận/Huyện/Thành phố"
    sheet.cell(row=3, column=at["a"]).value = 3  # 1.2: a count, as a number cell
    sheet.cell(row=3, column=at["b"]).value = 4.0
    out = io.BytesIO()
    workbook.save(out)
    table = dict(read_table(io.BytesIO(out.getvalue())))
    first, second = row(table[2], districts), row(table[3], districts, 3)
    assert isinstance(first, SetRow) and first.inputs == {"a": "secretary_or_chair"}
    assert isinstance(second, SetRow) and second.inputs == {"a": "3", "b": "4"}


def test_a_csv_may_be_separated_by_semicolons_and_must_name_its_columns_once() -> None:
    table = list(read_table(io.BytesIO("\ufeffunit_id;indicator;a\nquan-1;3.3;0,5\n".encode())))
    assert table == [(2, {"unit_id": "quan-1", "indicator": "3.3", "a": "0,5"})]
    with pytest.raises(UnreadableFile, match="named twice"):
        list(read_table(io.BytesIO(b"unit_id,indicator,a,a\n")))
    with pytest.raises(UnreadableFile, match="unit_id and indicator"):
        list(read_table(io.BytesIO(b"code,value\n")))
    with pytest.raises(UnreadableFile, match="UTF-8"):
        list(read_table(io.BytesIO(b"unit_id,indicator\n\xff\xfe\n")))
    with pytest.raises(UnreadableFile, match="XLSX"):
        list(read_table(io.BytesIO(b"PK\x03\x04 not a zip")))
