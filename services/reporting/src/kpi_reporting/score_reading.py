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

from sqlalchemy import Select, and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.as_of import AsOf
from kpi_core.catalogue import Catalogue
from kpi_core.scope import Scope
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


def _lines(
    scope: Scope, as_of: AsOf | None, units: Sequence[str] | None, codes: Sequence[str] | None, dialect: str
) -> Select[Any]:
    current = current_scores
    conditions = [current.c[name] == value for name, value in scope.columns().items()]
    if units is not None:
        conditions.append(current.c.unit_id.in_(units))
    if codes is not None:
        conditions.append(current.c.code.in_(codes))
    if as_of is None:
        return select(current).where(*conditions)
    # each score's newest line at the moment, sought from its key: the keys are those of the current
    # scores (every score that has a line has one), and each one's line at the moment is the one
    # with the largest sequence at or before it in the index on (scope, code, unit, sequence), one
    # seek per score. A GROUP BY over the lines instead read every line of the scope's codes (a
    # full-year ranking's lines: 17 → 7 ms in SQLite, measured)
    keys = [current.c[name] for name in (*scope.columns(), "unit_id", "code")]
    same_key = [score_lines.c[key.name] == key for key in keys]
    at_moment = as_of.condition(score_lines.c.sequence, score_lines.c.recorded_at)
    if dialect == "postgresql":
        # PostgreSQL would hash the scope's every line against the keys' sequences (24 ms, measured);
        # a lateral join takes each key's line from the index (SQLite has no LATERAL)
        line = (
            select(score_lines)
            .where(*same_key, at_moment)
            .order_by(score_lines.c.sequence.desc())
            .limit(1)
            .lateral("line")
        )
        return select(line).select_from(current.join(line, true())).where(*conditions)
    newest = select(func.max(score_lines.c.sequence)).where(*same_key, at_moment).scalar_subquery()
    latest = select(*keys, newest.label("sequence")).where(*conditions).subquery("latest")
    return select(score_lines).join_from(
        latest, score_lines, and_(*(score_lines.c[key.name] == key for key in latest.c))
    )


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
    for row in await session.execute(_lines(scope, as_of, units, codes, dialect)):
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
