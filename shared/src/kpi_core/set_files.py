"""Measurement sets as spreadsheets: the template's columns and rows, and a filled row back to a `SetRow`.

One row per scored component: its code and Vietnamese name, a guide to each input (meaning, type,
allowed values with their Vietnamese labels), one column per input name (`a`, `b`, ...), the
not-applicable reason and one evidence document. Headers read "Tên tiếng Việt (column)": the name
in the last parentheses is what counts, so a header written as just `unit_id` works too.

Cells arrive as a CSV or XLSX reader gives them (text, numbers, booleans, dates, blanks). Numbers
are handed to the single-measurement check as text, so `"45%"` and the decimal comma `"0,45"` are
read exactly as `POST /v1/measurements` reads them; categories accept their Vietnamese labels.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from kpi_core.catalogue import Catalogue, InputSpec, Node
from kpi_core.events import Evidence
from kpi_core.measurement_sets import RowError, SetRow, SetScope
from kpi_core.rules import LevelsRule, Rule, walk_rules

Cell = str | int | float | Decimal | bool | date | datetime | None

SCOPE_COLUMNS = ("catalogue_id", "catalogue_version", "period")
ROW_COLUMNS = ("unit_id", "indicator")
GUIDE_COLUMNS = ("name_vi", "max_points", "inputs_vi")  # shown to whoever fills the template; ignored on import
CLAIM_COLUMN = "not_applicable_reason"
EVIDENCE_COLUMNS = ("evidence_number", "evidence_title", "evidence_date", "evidence_url")
NOT_INPUTS = frozenset({*SCOPE_COLUMNS, *ROW_COLUMNS, *GUIDE_COLUMNS, CLAIM_COLUMN, *EVIDENCE_COLUMNS})
HEADERS_VI = {
    "catalogue_id": "Bộ chỉ số",
    "catalogue_version": "Phiên bản",
    "period": "Năm đánh giá",
    "unit_id": "Mã đơn vị",
    "indicator": "Mã chỉ số",
    "name_vi": "Tên chỉ số",
    "max_points": "Điểm tối đa",
    "inputs_vi": "Hướng dẫn nhập số liệu",
    CLAIM_COLUMN: "Lý do không áp dụng",
    "evidence_number": "Số văn bản minh chứng",
    "evidence_title": "Tên tài liệu minh chứng",
    "evidence_date": "Ngày ban hành (YYYY-MM-DD)",
    "evidence_url": "Đường dẫn tài liệu",
}
TYPES_VI = {
    "count": "số nguyên không âm",
    "number": "số",
    "percent": "tỷ lệ từ 0 đến 1 (hoặc 45%, 0,45)",
    "boolean": "Có/Không",
    "category": "chọn một",
    "points": "điểm",
    "text": "văn bản",
}
YES = {"có", "co", "x", "yes", "true", "1", "đúng", "dung", "đạt"}
NO = {"không", "khong", "no", "false", "0", "sai", "chưa", "chua"}
HEADER_NAME = re.compile(r"\(([^()]*)\)\s*$")


class TooManyRows(ValueError):
    """More rows than a set may hold; every row read counts, a blank one too."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} rows")
        self.limit = limit


def counted_rows(
    table: Iterable[tuple[int, Mapping[str, Cell]]], max_rows: int | None
) -> Iterator[tuple[int, Mapping[str, Cell]]]:
    """The rows of a table, refused (`TooManyRows`) past `max_rows` rows read, blank rows included:
    a sheet that declares a billion empty rows is refused after `max_rows`, not read to its end."""
    for count, (row, cells) in enumerate(table, start=1):
        if max_rows is not None and count > max_rows:
            raise TooManyRows(max_rows)
        yield row, cells


def column_name(header: Cell) -> str:
    """`Mã đơn vị (unit_id)` → `unit_id`; a plain header is its own name."""
    text = "" if header is None else str(header).strip()
    found = HEADER_NAME.search(text)
    return (found.group(1) if found else text).strip()


def header_for(name: str) -> str:
    label = HEADERS_VI.get(name)
    return f"{label} ({name})" if label else f"Giá trị {name} ({name})"


def _folded(text: str) -> str:
    """For matching labels: one form of the letters, case, spacing; a comma counts as a space (a
    spreadsheet's drop-down list cannot hold one)."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().replace(",", " ").split())


def category_labels(spec: InputSpec, rule: Rule | None) -> dict[str, str]:
    """Each allowed value of a category input and its Vietnamese label (the source's wording up to the
    points it awards: "Trưởng ban là Bí thư/Chủ tịch…"), or the value itself where the source gives none."""
    labels = {value: value for value in spec.options or ()}
    for inner in walk_rules(rule) if rule is not None else ():
        if isinstance(inner, LevelsRule) and inner.input == spec.name:
            for level in inner.levels:
                labels[level.value] = level.label_vi.split(":", 1)[0].strip() if level.label_vi else level.value
    return labels


def _category(spec: InputSpec, rule: Rule | None, text: str) -> str:
    """The value a label names (the value itself, its short label, or the source's full label)."""
    wanted = _folded(text)
    for value, label in category_labels(spec, rule).items():
        if wanted in (_folded(value), _folded(label)):
            return value
    for inner in walk_rules(rule) if rule is not None else ():
        if isinstance(inner, LevelsRule) and inner.input == spec.name:
            for level in inner.levels:
                if level.label_vi and wanted == _folded(level.label_vi):
                    return level.value
    return text  # the check names the allowed values


def _text(cell: Cell) -> str:
    if isinstance(cell, float):
        return repr(cell) if cell != int(cell) else str(int(cell))
    if isinstance(cell, datetime):
        return cell.date().isoformat()
    if isinstance(cell, date):
        return cell.isoformat()
    return str(cell).strip()


def cell_value(spec: InputSpec | None, rule: Rule | None, cell: Cell) -> Any:
    """A filled cell as a measurement's input: booleans from Có/Không, categories from their labels,
    numbers as text for the measurement check to read (decimal comma and % included)."""
    if spec is None:
        return _text(cell) if not isinstance(cell, bool) else cell
    if spec.type == "boolean":
        if isinstance(cell, bool):
            return cell
        folded = _folded(_text(cell))
        return True if folded in YES else False if folded in NO else _text(cell)
    if spec.type == "category":
        return _category(spec, rule, _text(cell))
    if isinstance(cell, bool):
        return cell  # refused by the check as not a number
    return _text(cell)


def _blank(cell: Cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def parse_row(row: int, cells: Mapping[str, Cell], catalogue: Catalogue, scope: SetScope) -> SetRow | RowError | None:
    """One filled row (column name → cell) as a set row; None for a row that reports nothing (blank,
    or a template row with no value, claim or evidence filled in); a row of another catalogue
    version or period is refused naming the column."""
    filled = {name: cell for name, cell in cells.items() if not _blank(cell)}  # each cell looked at once
    if not filled:
        return None
    for name, wanted in zip(
        SCOPE_COLUMNS, (scope.catalogue_id, scope.catalogue_version, str(scope.period)), strict=True
    ):
        if name in filled and _text(filled[name]) != wanted:
            return RowError(row, name, f"this set is for {wanted}; a set holds one catalogue version and period")
    unit_id, indicator = (_text(filled[name]) if name in filled else "" for name in ROW_COLUMNS)
    if not unit_id:
        return RowError(row, "unit_id", "required")
    if not indicator:
        return RowError(row, "indicator", "required")
    node = catalogue.node(indicator)
    inputs = {
        name: cell_value(node.input_spec(name) if node else None, node.rule if node else None, cell)
        for name, cell in filled.items()
        if name and name not in NOT_INPUTS
    }
    claim = filled.get(CLAIM_COLUMN)
    evidence = _evidence(row, filled)
    if isinstance(evidence, RowError):
        return evidence
    if not inputs and claim is None and not evidence:
        return None  # a template row left empty: nothing reported for this component
    return SetRow(row, unit_id, indicator, inputs, None if claim is None else _text(claim), evidence)


def _evidence(row: int, filled: Mapping[str, Cell]) -> tuple[Evidence, ...] | RowError:
    """The evidence columns of a row's filled cells (a blank cell is not among them)."""
    number, title, when, url = (filled.get(name) for name in EVIDENCE_COLUMNS)
    if all(_blank(cell) for cell in (number, title, when, url)):
        return ()
    try:
        return (
            Evidence(
                title=_text(title) if not _blank(title) else "",
                number=None if _blank(number) else _text(number),
                date=None if _blank(when) else _text(when),
                url=None if _blank(url) else _text(url),
            ),
        )
    except ValidationError as invalid:
        error = invalid.errors()[0]
        return RowError(row, f"evidence_{error['loc'][0]}", error["msg"])


def parse_rows(
    table: Iterable[tuple[int, Mapping[str, Cell]]],
    catalogue: Catalogue,
    scope: SetScope,
    max_rows: int | None = None,
) -> Iterator[SetRow | RowError]:
    """Each row that reports something; every row read (blank or not) counts against `max_rows`."""
    for row, cells in counted_rows(table, max_rows):
        parsed = parse_row(row, cells, catalogue, scope)
        if parsed is not None:
            yield parsed


def scored_components(catalogue: Catalogue) -> list[Node]:
    """The components a unit reports: scored leaves with a rule of their own, under scored ancestors."""
    found = []
    for node in catalogue.leaves():
        current: Node | None = node
        while current is not None and current.scored:
            current = catalogue.node(current.parent) if current.parent else None
        if current is None and node.inputs:
            found.append(node)
    return found


def input_columns(catalogue: Catalogue) -> list[str]:
    names = {spec.name for node in scored_components(catalogue) for spec in node.inputs if spec.constant is None}
    return sorted(names, key=lambda name: (len(name), name))


def template_columns(catalogue: Catalogue) -> list[str]:
    return [*SCOPE_COLUMNS, *ROW_COLUMNS, *GUIDE_COLUMNS, *input_columns(catalogue), CLAIM_COLUMN, *EVIDENCE_COLUMNS]


def input_guide(node: Node) -> str:
    """What each input means, its type and what it accepts, in Vietnamese."""
    lines = []
    for spec in node.inputs:
        if spec.constant is not None:
            continue
        kind = TYPES_VI.get(spec.type, spec.type)
        line = f"{spec.name}: {spec.meaning_vi or spec.meaning_en or ''} [{kind}]"
        if spec.type == "category":
            line += " — " + " | ".join(category_labels(spec, node.rule).values())
        lines.append(line)
    if node.not_applicable:
        lines.append("Được phép khai báo không áp dụng (ghi lý do và minh chứng)")
    return "\n".join(lines)


def template_rows(catalogue: Catalogue, period: int | None, units: Iterable[str]) -> Iterator[dict[str, Cell]]:
    """One row per unit × scored component, the scope and guide filled in, the values left blank."""
    for unit in units:
        for node in scored_components(catalogue):
            yield {
                "catalogue_id": catalogue.id,
                "catalogue_version": catalogue.version,
                "period": period,
                "unit_id": unit or None,
                "indicator": node.code,
                "name_vi": node.name_vi,
                "max_points": str(node.max_points) if node.max_points is not None else None,
                "inputs_vi": input_guide(node),
            }
