"""Read-side queries of the scoring projection."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.as_of import AsOf
from kpi_core.scope import Scope
from kpi_core.scoring import display_points
from kpi_scoring.adapters.orm import score_changes, scores


def _row(row: Any) -> dict[str, Any]:
    return {
        "code": row.code,
        "status": row.status,
        "points": row.points,
        "points_exact": row.points_exact,
        "max_points": row.max_points,
        "explanation": json.loads(row.explanation),
        "as_of_sequence": row.sequence,
    }


async def unit_scores(session: AsyncSession, scope: Scope, unit: str, code: str | None = None) -> list[dict[str, Any]]:
    conditions = [scores.c[name] == value for name, value in scope.columns().items()]
    query = select(scores).where(*conditions, scores.c.unit_id == unit)
    if code is not None:
        query = query.where(scores.c.code == code)
    return [_row(row) for row in await session.execute(query.order_by(scores.c.code))]


async def changes_by_event(session: AsyncSession, sequence: int) -> list[dict[str, Any]]:
    """Every score the event with this sequence changed, from what to what."""
    query = select(score_changes).where(score_changes.c.sequence == sequence)
    rows = await session.execute(query.order_by(score_changes.c.unit_id, score_changes.c.code))
    return [
        {
            "catalogue": row.catalogue_id,
            "version": row.version,
            "period": row.period,
            "stage": row.stage,
            "unit_id": row.unit_id,
            "code": row.code,
            "points_before": _shown(row.points_before),
            "points_after": _shown(row.points_after),
        }
        for row in rows
    ]


def _shown(exact: str | None) -> str | None:
    return str(display_points(Fraction(exact))) if exact is not None else None


async def unit_scores_as_of(
    session: AsyncSession, scope: Scope, unit: str, code: str | None, as_of: AsOf
) -> list[dict[str, Any]]:
    """The scores as they stood at a past moment: each code's last change at or before it."""
    conditions = [score_changes.c[name] == value for name, value in scope.columns().items()]
    query = (
        select(score_changes)
        .where(*conditions, score_changes.c.unit_id == unit)
        .where(as_of.condition(score_changes.c.sequence, score_changes.c.recorded_at))
        .order_by(score_changes.c.sequence)
    )
    if code is not None:
        query = query.where(score_changes.c.code == code)
    latest: dict[str, Any] = {}
    for row in await session.execute(query):
        latest[row.code] = row
    return [
        {
            "code": row.code,
            "status": row.status,
            "points": _shown(row.points_after),
            "points_exact": row.points_after,
            "max_points": row.max_points,
            "explanation": json.loads(row.explanation),
            "as_of_sequence": row.sequence,
        }
        for _, row in sorted(latest.items())
    ]
