"""Spreadsheets in and out: a CSV or XLSX file read row by row (never whole), and a template written.

Rows are numbered as the spreadsheet shows them (the header is row 1). A CSV may be UTF-8 with or
without a BOM, separated by commas, semicolons (what Excel writes where the decimal separator is a
comma) or tabs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from kpi_core.catalogue import Catalogue
from kpi_core.set_files import Cell, category_labels, column_name, header_for, scored_components

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SHEET_TITLE = "So lieu"  # sheet names: no diacritics, for every spreadsheet program
ZIP_MAGIC = b"PK\x03\x04"
Table = Iterator[tuple[int, dict[str, Cell]]]


class UnreadableFile(ValueError):
    """The file is not a CSV or XLSX this service can read; the message says why."""


def is_xlsx(file: IO[bytes]) -> bool:
    start = file.read(4)
    file.seek(0)
    return start == ZIP_MAGIC


def read_table(file: IO[bytes]) -> Table:
    return read_xlsx(file) if is_xlsx(file) else read_csv(file)


def _named(header: Iterable[Any]) -> list[str]:
    names = [column_name(cell) for cell in header]
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise UnreadableFile(f"column(s) named twice: {', '.join(repeated)}")
    if "indicator" not in names or "unit_id" not in names:
        raise UnreadableFile("the header row needs the columns unit_id and indicator (see the template)")
    return names


def read_csv(file: IO[bytes]) -> Table:
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
    try:
        first = text.readline()
        delimiter = max((",", ";", "\t"), key=first.count)
        header = next(csv.reader([first], delimiter=delimiter), [])
        names = _named(header)
        for number, cells in enumerate(csv.reader(text, delimiter=delimiter), start=2):
            yield number, dict(zip(names, cells, strict=False))
    except UnicodeDecodeError:
        raise UnreadableFile("a CSV file must be UTF-8 text (save as “CSV UTF-8”)") from None
    except csv.Error as error:
        raise UnreadableFile(f"not a readable CSV file: {error}") from None
    finally:
        text.detach()


def read_xlsx(file: IO[bytes]) -> Table:
    try:
        workbook = load_workbook(file, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a damaged file
        raise UnreadableFile(f"not a readable XLSX file: {type(error).__name__}") from None
    try:
        sheet = workbook[SHEET_TITLE] if SHEET_TITLE in workbook.sheetnames else workbook.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        names = _named(next(rows, ()))
        for number, cells in enumerate(rows, start=2):
            yield number, {name: _cell(cell) for name, cell in zip(names, cells, strict=False) if name}
    finally:
        workbook.close()


def _cell(value: object) -> Cell:
    """A worksheet value as a cell of the table (rich text, times and formulas as their text)."""
    if value is None or isinstance(value, (str, int, float, Decimal, bool, date, datetime)):
        return value
    return str(value)


def template_csv(columns: list[str], rows: Iterable[Mapping[str, Cell]]) -> bytes:
    """UTF-8 with a BOM (spreadsheet programs then read the diacritics), one header row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([header_for(name) for name in columns])
    for row in rows:
        writer.writerow(["" if row.get(name) is None else row.get(name) for name in columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def template_xlsx(catalogue: Catalogue, columns: list[str], rows: Iterable[Mapping[str, Cell]]) -> bytes:
    """The same rows as a workbook: a wrapped guide column, and a drop-down of Vietnamese labels on
    each category or yes/no cell."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = SHEET_TITLE
    sheet.append([header_for(name) for name in columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    position = {name: index + 1 for index, name in enumerate(columns)}
    nodes = {node.code: node for node in scored_components(catalogue)}
    lists: dict[str, DataValidation] = {}
    for number, row in enumerate(rows, start=2):
        sheet.append([row.get(name) for name in columns])
        node = nodes.get(str(row.get("indicator")))
        for spec in node.inputs if node else ():
            if spec.name not in position or spec.type not in ("category", "boolean"):
                continue
            labels = (
                ["Có", "Không"]
                if spec.type == "boolean"
                else list(category_labels(spec, node.rule if node else None).values())
            )
            formula = '"' + ",".join(label.replace('"', "'").replace(",", " ") for label in labels) + '"'
            if len(formula) > 255:
                continue  # Excel's limit on a list written in place
            if formula not in lists:
                lists[formula] = DataValidation(type="list", formula1=formula, allow_blank=True)
                sheet.add_data_validation(lists[formula])
            lists[formula].add(sheet.cell(row=number, column=position[spec.name]))
    guide = position["inputs_vi"]
    for (cell,) in sheet.iter_rows(min_row=2, min_col=guide, max_col=guide):
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    sheet.column_dimensions[get_column_letter(guide)].width = 60
    sheet.column_dimensions[get_column_letter(position["name_vi"])].width = 40
    sheet.freeze_panes = "F2"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
