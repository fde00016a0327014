"""Reading the scores scoring computed, now or at a past moment, back into the core's score values.

Now is the latest line of each score (`current_scores`); a past moment is the latest line at or
before it (`score_lines`). Only what ever changed has a line: the core fills in the rest
(`kpi_core.scoring.unit_score_of`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, bindparam, case, literal_column, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.as_of import AsOf
from kpi_core.catalogue import Catalogue
from kpi_core.scope import SCOPE_COLUMNS, Scope
from kpi_core.score_events import TOTAL_CODE
from kpi_core.scoring import IndicatorScore, PeerStats, UnitScore, unit_score_of
from kpi_reporting.adapters.orm import current_scores, first_reports, score_lines

LEAF_STATUSES = {"scored", "missing", "not_applicable"}


def _fraction(text: str | None) -> Fraction | None:
    return exact(text) if text is not None else None


@functools.lru_cache(maxsize=65_536)
def exact(text: str) -> Fraction:
    """A stored exact number ("7/3") as a fraction. A ranking reads thousands of them and parsing
    one is a regular expression: a third of a ranking's time. A period's scores repeat few values,
    and a fraction never changes, so each text is parsed once."""
    return Fraction(text)


def _read_columns(table: FromClause) -> list[Any]:
    """What a read takes from a line: a pillar's or the total's line gives its points alone, so the
    explanation (the widest column) is read for the indicators only."""
    names = ("unit_id", "code", "sequence", "status", "points", "max_points", "event_id")
    leaf = table.c.status.in_(sorted(LEAF_STATUSES))
    return [*(table.c[name] for name in names), case((leaf, table.c.detail)).label("detail")]


@functools.lru_cache(maxsize=64)
def _lines(moment: str | None, by_units: bool, by_codes: bool, dialect: str) -> Select[Any]:
    """The statement reading the lines: the scope's columns, `units`, `codes` and `moment` (the
    sequence or the recorded time, by `moment`'s name) are bound at execution. Built once per shape:
    building and keying a statement cost as much as SQLite running it."""
    current = current_scores
    conditions = [current.c[name] == bindparam(name) for name in SCOPE_COLUMNS]
    if by_units:
        conditions.append(current.c.unit_id.in_(bindparam("units", expanding=True)))
    if by_codes:
        conditions.append(current.c.code.in_(bindparam("codes", expanding=True)))
    if moment is None:
        return select(*_read_columns(current)).where(*conditions)
    # each score's newest line at the moment, sought from its key: the keys are those of the current
    # scores (every score that has a line has one), and each one's line at the moment is the one
    # with the largest sequence at or before it in the index on (scope, code, unit, sequence), one
    # seek per score. A GROUP BY over the lines instead read every line of the scope's codes (a
    # full-year ranking's lines: 17 → 7 ms in SQLite, measured)
    line = score_lines.alias("line")
    same_key = [line.c[name] == current.c[name] for name in (*SCOPE_COLUMNS, "unit_id", "code")]
    at_moment = line.c[moment] <= bindparam("moment")
    newest_first = select(line).where(*same_key, at_moment).order_by(line.c.sequence.desc()).limit(1)
    if dialect == "postgresql":
        # PostgreSQL would hash the scope's every line against the keys' sequences (24 ms, measured);
        # a lateral join takes each key's line from the index (SQLite has no LATERAL)
        newest = newest_first.lateral("newest")
        return select(*_read_columns(newest)).select_from(current.join(newest, true())).where(*conditions)
    # SQLite: the newest line's rowid from the index alone, then the line by its rowid (an integer
    # key, not the seven columns of the primary key: a full-year ranking's lines 7 → 4-5 ms, measured)
    row_of: ColumnElement[int] = literal_column("line.rowid")
    newest_row = newest_first.with_only_columns(row_of).scalar_subquery()
    latest = select(newest_row.label("row")).where(*conditions).subquery("latest")
    return select(*_read_columns(score_lines)).join_from(
        latest, score_lines, literal_column("score_lines.rowid") == latest.c.row
    )


def _parameters(
    scope: Scope, as_of: AsOf | None, units: Sequence[str] | None, codes: Sequence[str] | None
) -> dict[str, Any]:
    parameters: dict[str, Any] = dict(scope.columns())
    if units is not None:
        parameters["units"] = list(units)
    if codes is not None:
        parameters["codes"] = list(codes)
    if as_of is not None:
        parameters["moment"] = as_of.sequence if as_of.sequence is not None else as_of.recorded_at
    return parameters


def _moment_column(as_of: AsOf | None) -> str | None:
    if as_of is None:
        return None
    return "sequence" if as_of.sequence is not None else "recorded_at"


async def unit_scores(
    session: AsyncSession,
    catalogue: Catalogue,
    scope: Scope,
    as_of: AsOf | None,
    *,
    units: Sequence[str] | None = None,
    codes: Sequence[str] | None = None,
) -> tuple[dict[str, UnitScore], int]:
    """Every unit's score (only `units`, only `codes` if given), and the last log sequence among them."""
    indicators: dict[str, dict[str, IndicatorScore]] = {}
    points: dict[str, dict[str, Fraction]] = {}
    totals: dict[str, Fraction] = {}
    last = 0
    dialect = session.get_bind().dialect.name
    statement = _lines(_moment_column(as_of), units is not None, codes is not None, dialect)
    for row in await session.execute(statement, _parameters(scope, as_of, units, codes)):
        last = max(last, row.sequence)
        unit_points = points.setdefault(row.unit_id, {})
        if row.code == TOTAL_CODE:
            totals[row.unit_id] = exact(row.points or "0")
            continue
        unit_points[row.code] = exact(row.points or "0")
        if row.status in LEAF_STATUSES:
            indicators.setdefault(row.unit_id, {})[row.code] = _indicator(row)
    scores = {
        unit: unit_score_of(catalogue, unit, indicators.get(unit, {}), unit_points, totals.get(unit))
        for unit, unit_points in points.items()
    }
    return scores, last


def _indicator(row: Any) -> IndicatorScore:
    detail = json.loads(row.detail)
    peer = detail.get("peer")
    return IndicatorScore(
        code=row.code,
        status=row.status,
        points=_fraction(row.points),
        max_points=_fraction(row.max_points),
        value=_fraction(detail.get("value")),
        formula=detail.get("formula") or "",
        inputs=detail.get("inputs") or {},
        event_id=row.event_id,
        sequence=row.sequence,
        peer=PeerStats(exact(peer["min"]), exact(peer["max"]), peer.get("min_event_id"), peer.get("max_event_id"))
        if peer
        else None,
        previous_event_id=detail.get("previous_period_event_id"),
    )


async def reported_units(session: AsyncSession, scope: Scope, as_of: AsOf | None) -> set[str]:
    """Units with at least one score coming from a measurement of theirs (at that moment)."""
    if as_of is None:
        conditions = [current_scores.c[name] == value for name, value in scope.columns().items()]
        query = select(current_scores.c.unit_id).where(*conditions, current_scores.c.event_id.is_not(None)).distinct()
    else:
        conditions = [first_reports.c[name] == value for name, value in scope.columns().items()]
        conditions.append(as_of.condition(first_reports.c.sequence, first_reports.c.recorded_at))
        query = select(first_reports.c.unit_id).where(*conditions)
    return set((await session.scalars(query)).all())
