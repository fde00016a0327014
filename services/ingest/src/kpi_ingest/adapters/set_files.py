"""Spreadsheets in and out: a CSV or XLSX file read row by row (never whole), and a template written.

Rows are numbered as the spreadsheet shows them (the header is row 1). A CSV may be UTF-8 with or
without a BOM, separated by commas, semicolons (what Excel writes where the decimal separator is a
comma) or tabs.

Reading is bounded: every row read counts against the set's row limit (a blank one too, so a sheet
declaring a billion empty rows is refused at once), an XLSX is refused when its declared dimension is
already past the limit or its parts unpack to more than the unpacked cap, and a cell the reader
cannot read makes the file `UnreadableFile`, never an unexpected error.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Generator, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any

from kpi_common.cells import inert
from kpi_core.catalogue import Catalogue
from kpi_core.set_files import (
    Cell,
    TooManyRows,
    category_labels,
    column_name,
    counted_rows,
    header_for,
    scored_components,
)

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SHEET_TITLE = "So lieu"  # sheet names: no diacritics, for every spreadsheet program
ZIP_MAGIC = b"PK\x03\x04"
Table = Generator[tuple[int, dict[str, Cell]], None, None]


class UnreadableFile(ValueError):
    """The file is not a CSV or XLSX this service can read; the message says why."""


class TooLargeUnpacked(ValueError):
    """An XLSX whose parts unpack to more bytes than the service reads."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} bytes unpacked")
        self.limit = limit


def is_xlsx(file: IO[bytes]) -> bool:
    start = file.read(4)
    file.seek(0)
    return start == ZIP_MAGIC


def read_table(file: IO[bytes], max_rows: int | None = None, max_unpacked_bytes: int | None = None) -> Table:
    """The rows of a CSV or XLSX, refused (`TooManyRows`) past `max_rows` rows read."""
    rows = read_xlsx(file, max_rows, max_unpacked_bytes) if is_xlsx(file) else read_csv(file)
    try:
        for row, cells in counted_rows(rows, max_rows):
            yield row, dict(cells)
    finally:
        rows.close()  # now, while the file is open: a refusal part-way leaves no reader behind


def load_table(file: IO[bytes], max_rows: int, max_unpacked_bytes: int) -> list[tuple[int, dict[str, Cell]]]:
    """The rows of a file that hold something (each row read counted, blank ones too), read whole:
    what a worker thread does so that parsing a file never holds up the event loop."""
    try:
        return [
            (row, cells)
            for row, cells in read_table(file, max_rows, max_unpacked_bytes)
            if any(cell is not None and str(cell).strip() for cell in cells.values())
        ]
    finally:
        file.seek(0)


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


def unpacked_size(file: IO[bytes]) -> int:
    """What the parts of a zip declare they unpack to (a part cannot unpack to more than it declares)."""
    try:
        with zipfile.ZipFile(file) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise UnreadableFile(f"not a readable XLSX file: {type(error).__name__}") from None
    finally:
        file.seek(0)


def read_xlsx(file: IO[bytes], max_rows: int | None = None, max_unpacked_bytes: int | None = None) -> Table:
    if max_unpacked_bytes is not None and unpacked_size(file) > max_unpacked_bytes:
        raise TooLargeUnpacked(max_unpacked_bytes)
    from openpyxl import load_workbook  # here, not at the top: openpyxl (and numpy) was a tenth of ingest's start

    try:
        workbook = load_workbook(file, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many kinds for a damaged file
        raise UnreadableFile(f"not a readable XLSX file: {type(error).__name__}") from None
    try:
        sheet = workbook[SHEET_TITLE] if SHEET_TITLE in workbook.sheetnames else workbook.worksheets[0]
        if max_rows is not None and (sheet.max_row or 0) - 1 > max_rows:
            raise TooManyRows(max_rows)  # the sheet's declared dimension: refused before a row is read
        yield from _sheet_rows(sheet)
    finally:
        workbook.close()


def _sheet_rows(sheet: Any) -> Table:
    """The header, then each row no wider than the header; a cell the reader cannot read (a number
    cell holding text, a damaged part) makes the file unreadable."""
    try:
        names = _named(next(sheet.iter_rows(max_row=1, values_only=True), ()))
        width = max(index for index, name in enumerate(names, start=1) if name)
        for number, cells in enumerate(sheet.iter_rows(min_row=2, max_col=width, values_only=True), start=2):
            yield number, {name: _cell(cell) for name, cell in zip(names, cells, strict=False) if name}
    except UnreadableFile:
        raise
    except Exception as error:  # openpyxl raises many kinds for a damaged cell
        raise UnreadableFile(f"not a readable XLSX file: {type(error).__name__} in a cell") from None


def _cell(value: object) -> Cell:
    """A worksheet value as a cell of the table (rich text, times and formulas as their text)."""
    if value is None or isinstance(value, (str, int, float, Decimal, bool, date, datetime)):
        return value
    return str(value)


def template_csv(columns: list[str], rows: Iterable[Mapping[str, Cell]]) -> bytes:
    """UTF-8 with a BOM (spreadsheet programs then read the diacritics), one header row; no text cell
    can be read as a formula."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([header_for(name) for name in columns])
    for row in rows:
        writer.writerow(["" if row.get(name) is None else inert(row.get(name)) for name in columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _as_text(cells: Iterable[Any]) -> None:
    """Every text cell of a written row stored as text: a value starting with `=` is never a formula."""
    for cell in cells:
        if isinstance(cell.value, str):
            cell.data_type = "s"


def template_xlsx(catalogue: Catalogue, columns: list[str], rows: Iterable[Mapping[str, Cell]]) -> bytes:
    """The same rows as a workbook: a wrapped guide column, and a drop-down of Vietnamese labels on
    each category or yes/no cell."""
    from openpyxl import Workbook  # here, not at the top: see read_xlsx
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

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
        _as_text(sheet[number])
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
