"""Read-side queries of the scoring projection."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_scoring.adapters.orm import scores


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


async def unit_scores(
    session: AsyncSession, scope: dict[str, Any], unit: str, code: str | None = None
) -> list[dict[str, Any]]:
    query = select(scores).where(*(scores.c[name] == value for name, value in scope.items()), scores.c.unit_id == unit)
    if code is not None:
        query = query.where(scores.c.code == code)
    return [_row(row) for row in await session.execute(query.order_by(scores.c.code))]
