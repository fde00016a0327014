"""SDMX-CSV 2.0 (https://github.com/sdmx-twg/sdmx-csv) of what reporting holds, in two dataflows
described in docs/sdmx.md: every unit's points (`KPI_LEDGER:DF_KPI_SCORES(1.0)`, from the score lines
the scoring service computed) and every unit's inputs (`KPI_LEDGER:DF_KPI_INPUTS(1.0)`, the latest
measurement of each unit and component, from the measurement events). Reporting scores nothing here.

Both carry the dimensions CATALOGUE, VERSION, TIME_PERIOD, UNIT, INDICATOR, STAGE (and INPUT for the
inputs) and the attributes OBS_STATUS and EVIDENCE_COUNT. UTF-8 without a byte-order mark. A value that
is a number is written as the number it is (negative too); a text value that a spreadsheet program
would read as a formula is written after a `'` (`kpi_common.cells`), as in every CSV the services write.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.as_of import AsOf
from kpi_common.cells import inert
from kpi_core.scope import Scope
from kpi_core.units import UnitRegistry
from kpi_reporting.adapters.orm import measurement_history

TOTAL = "_T"  # SDMX's code for a total
NOT_APPLICABLE = "_Z"  # SDMX's code for "not applicable": the INPUT of a not-applicable declaration
SCORES_DATAFLOW = "KPI_LEDGER:DF_KPI_SCORES(1.0)"
INPUTS_DATAFLOW = "KPI_LEDGER:DF_KPI_INPUTS(1.0)"
DIMENSIONS = ("CATALOGUE", "VERSION", "TIME_PERIOD", "UNIT", "INDICATOR", "STAGE")
SCORE_COLUMNS = (
    "STRUCTURE",
    "STRUCTURE_ID",
    "ACTION",
    *DIMENSIONS,
    "OBS_VALUE",
    "OBS_STATUS",
    "EVIDENCE_COUNT",
    "MAX_POINTS",
    "UNIT_NAME",
)
INPUT_COLUMNS = (
    "STRUCTURE",
    "STRUCTURE_ID",
    "ACTION",
    *DIMENSIONS,
    "INPUT",
    "OBS_VALUE",
    "OBS_STATUS",
    "EVIDENCE_COUNT",
    "UNIT_NAME",
)


def sdmx_csv(columns: Iterable[str], rows: Iterable[list[Any]]) -> str:
    """The file: the header, then one line per observation ("\\n"); an empty cell for a missing value."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows([["" if value is None else inert(value) for value in row] for row in rows])
    return buffer.getvalue()


def _flatten(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        yield from _flatten(node.get("children", []))


def evidence_of(node: dict[str, Any], counts: dict[str, int | None]) -> int | None:
    """A score's evidence count: a component's, that of the measurement it comes from; a pillar's (and
    the total's), the sum over its components; None where no measurement says (nothing measured)."""
    if node.get("event_id"):
        return counts.get(node["event_id"])
    known = [count for count in (evidence_of(child, counts) for child in node.get("children", [])) if count is not None]
    return sum(known) if known else None


def score_rows(card: dict[str, Any], scope: Scope, counts: dict[str, int | None]) -> Iterator[list[Any]]:
    """A scorecard as observations of DF_KPI_SCORES: the total, then each pillar and component."""
    fixed = ["dataflow", SCORES_DATAFLOW, "I", scope.catalogue_id, scope.version, scope.period]
    fixed.append(card["unit_id"])
    name = card.get("unit_name_vi") or ""
    total = evidence_of({"children": card["pillars"]}, counts)
    yield [*fixed, TOTAL, scope.stage, card["total"], card.get("status"), total, card.get("max_points"), name]
    for node in _flatten(card["pillars"]):
        observed = [node.get("points"), node.get("status"), evidence_of(node, counts), node.get("max_points")]
        yield [*fixed, node["code"], scope.stage, *observed, name]


async def evidence_counts(session: AsyncSession, scope: Scope) -> dict[str, int | None]:
    """The evidence count of every measurement of a catalogue version and period, by event id."""
    query = select(measurement_history.c.event_id, measurement_history.c.evidence_count).where(
        *(measurement_history.c[name] == value for name, value in scope.period_columns().items())
    )
    return {row.event_id: row.evidence_count for row in await session.execute(query)}


def measurement_status(row: Any) -> str:
    """A measurement's OBS_STATUS: the evaluator's decision (accepted, adjusted), else the unit's claim
    (not_applicable_claimed) or its submission (submitted)."""
    if row.decision:
        return str(row.decision)
    return "not_applicable_claimed" if row.not_applicable_reason is not None else "submitted"


async def latest_measurements(session: AsyncSession, scope: Scope, stage: str, as_of: AsOf | None) -> list[Any]:
    """The latest measurement of each unit and component in a stage (up to a moment), by unit and code."""
    query = select(measurement_history).where(
        *(measurement_history.c[name] == value for name, value in scope.period_columns().items()),
        measurement_history.c.stage == stage,
    )
    if as_of is not None:
        query = query.where(as_of.condition(measurement_history.c.sequence, measurement_history.c.recorded_at))
    latest: dict[tuple[str, str], Any] = {}
    for row in await session.execute(query.order_by(measurement_history.c.sequence)):
        latest[(row.unit_id, row.indicator)] = row
    return [latest[key] for key in sorted(latest, key=lambda key: (key[0], _code_order(key[1])))]


def _code_order(code: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(part), "") if part.isdigit() else (0, part) for part in code.split("."))


def input_rows(measurements: Iterable[Any], scope: Scope, registry: UnitRegistry) -> Iterator[list[Any]]:
    """Measurements as observations of DF_KPI_INPUTS: one per input (a yes/no as true or false); a
    not-applicable declaration, which has none, as one observation of INPUT _Z without a value."""
    for row in measurements:
        unit = registry.unit(row.unit_id)
        fixed = ["dataflow", INPUTS_DATAFLOW, "I", scope.catalogue_id, scope.version, scope.period]
        fixed += [row.unit_id, row.indicator, scope.stage]
        after = [measurement_status(row), row.evidence_count, unit.name_vi if unit is not None else ""]
        inputs: dict[str, Any] = json.loads(row.inputs)
        if not inputs:
            yield [*fixed, NOT_APPLICABLE, None, *after]
        for name in sorted(inputs):
            value = inputs[name]
            yield [*fixed, name, ("true" if value else "false") if isinstance(value, bool) else value, *after]
