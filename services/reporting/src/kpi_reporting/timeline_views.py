"""Read-side queries over the workflow: verifications, general information, publications, a unit's history."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.as_of import AsOf
from kpi_core.events import ContextReported, ResultPublished
from kpi_core.scope import Scope
from kpi_core.units import Unit, UnitRegistry
from kpi_reporting.adapters.orm import frozen_results, measurement_history, timeline


def _in_scope(table: Any, scope: Scope, as_of: AsOf | None) -> list[Any]:
    conditions = [table.c[name] == value for name, value in scope.period_columns().items()]
    if as_of is not None:
        conditions.append(as_of.condition(table.c.sequence, table.c.recorded_at))
    return conditions


async def verifications(
    session: AsyncSession, scope: Scope, unit: str, as_of: AsOf | None
) -> dict[str, dict[str, Any]]:
    """The evaluator's latest decision on each component of a unit."""
    query = (
        select(measurement_history)
        .where(*_in_scope(measurement_history, scope, as_of))
        .where(measurement_history.c.unit_id == unit, measurement_history.c.stage == "verification")
        .order_by(measurement_history.c.sequence)
    )
    return {
        row.indicator: {
            "decision": row.decision,
            "reason": row.reason,
            "verified_by": row.submitted_by,
            "verified_at": row.recorded_at,
            "self_assessment_event_id": row.verifies_event_id,
            "event_id": row.event_id,
        }
        for row in await session.execute(query)
    }


async def general_information(session: AsyncSession, scope: Scope, unit: str, as_of: AsOf | None) -> dict[str, Any]:
    """A unit's general information for the period: the latest value of every field reported."""
    query = (
        select(timeline.c.data)
        .where(*_in_scope(timeline, scope, as_of))
        .where(timeline.c.type == ContextReported.type, timeline.c.unit_id == unit)
        .order_by(timeline.c.sequence)
    )
    values: dict[str, Any] = {}
    for data in (await session.execute(query)).scalars():
        values |= json.loads(data)["values"]
    return values


async def publications(session: AsyncSession, scope: Scope, as_of: AsOf | None) -> list[dict[str, Any]]:
    """The period's publications in order, each with the ranking frozen at its cut: by scoring (from
    the score stream; one not frozen yet is not listed yet), or in the event itself for older ones."""
    query = (
        select(timeline)
        .where(*_in_scope(timeline, scope, as_of))
        .where(timeline.c.type == ResultPublished.type)
        .order_by(timeline.c.sequence)
    )
    in_period = [frozen_results.c[name] == value for name, value in scope.period_columns().items()]
    frozen = {row.publication_id: row for row in await session.execute(select(frozen_results).where(*in_period))}
    found = []
    for row in await session.execute(query):
        data = json.loads(row.data)
        if not data.get("ranking"):
            if data["publication_id"] not in frozen:
                continue
            ranking = frozen[data["publication_id"]]
            data |= {"ranking": json.loads(ranking.ranking), "moved": json.loads(ranking.moved)}
        found.append({**data, "event_id": row.event_id, "sequence": row.sequence, "published_at": row.recorded_at})
    return found


def _names(unit: Unit | None) -> dict[str, str | None]:
    return {
        "unit_name_vi": unit.name_vi if unit else None,
        "unit_name_en": unit.name_en if unit else None,
        "unit_code": unit.code if unit else None,
    }


def published_view(
    found: list[dict[str, Any]], publication_id: str | None, pillar: str | None, registry: UnitRegistry
) -> dict[str, Any] | None:
    """A publication exactly as recorded (the latest, or the one named), with what restated it, if anything."""
    chosen = (
        next((p for p in found if p["publication_id"] == publication_id), None)
        if publication_id
        else (found[-1] if found else None)
    )
    if chosen is None:
        return None
    restated_by = next((p["publication_id"] for p in found if p.get("replaces") == chosen["publication_id"]), None)
    rows = [
        {
            "rank": entry["rank"],
            "rank_label": f"{entry['rank']}/{entry['of']}",
            "unit_id": entry["unit_id"],
            **_names(registry.unit(entry["unit_id"])),
            "total": entry["total"],
            "pillars": entry["pillars"],
        }
        for entry in chosen["ranking"]
    ]
    if pillar is not None:
        rows = _rank_by(rows, lambda row: row["pillars"].get(pillar, "0"))
    return {
        "catalogue": chosen["catalogue_id"],
        "version": chosen["catalogue_version"],
        "period": chosen["period"],
        "stage": "published",
        "published_stage": chosen["stage"],
        "pillar": pillar,
        "publication_id": chosen["publication_id"],
        "published_at": chosen["published_at"],
        "published_by": chosen["published_by"],
        "as_of_sequence": chosen["as_of_sequence"],
        "replaces": chosen.get("replaces"),
        "restated_by": restated_by,
        "reason": chosen.get("reason"),
        "moved": chosen.get("moved", []),
        "incomplete_reason": chosen.get("incomplete_reason"),
        "missing": chosen.get("missing", []),
        "rankings": rows,
    }


def _rank_by(rows: list[dict[str, Any]], points: Any) -> list[dict[str, Any]]:
    ordered = sorted(rows, key=lambda row: (-Decimal(points(row)), row["unit_id"]))
    ranked: list[dict[str, Any]] = []
    for position, row in enumerate(ordered, start=1):
        tied = ranked and Decimal(points(ranked[-1])) == Decimal(points(row))
        rank = ranked[-1]["rank"] if tied else position
        ranked.append({**row, "rank": rank, "rank_label": f"{rank}/{len(ordered)}"})
    return ranked


async def unit_history(
    session: AsyncSession, scope: Scope, unit: str | None, indicator: str | None, as_of: AsOf | None
) -> list[dict[str, Any]]:
    """Every event about a unit (or, with no unit, every unit) in a catalogue version and period, in
    order: submissions, corrections, not-applicable declarations, verifications with reasons, evidence
    requests, reopenings, general information; plus the period's closings and publications. Each with
    who and when."""
    entries: list[dict[str, Any]] = []
    query = select(measurement_history).where(*_in_scope(measurement_history, scope, as_of))
    if unit is not None:
        query = query.where(measurement_history.c.unit_id == unit)
    if indicator is not None:
        query = query.where(measurement_history.c.indicator == indicator)
    for row in await session.execute(query):
        entries.append(
            {
                "sequence": row.sequence,
                "event_id": row.event_id,
                "type": "vn.kpi.measurement.recorded.v1",
                "recorded_at": row.recorded_at,
                "by": row.submitted_by,
                "unit_id": row.unit_id,
                "indicator": row.indicator,
                "stage": row.stage,
                "inputs": json.loads(row.inputs),
                "not_applicable_reason": row.not_applicable_reason,
                "decision": row.decision,
                "reason": row.reason,
                "responds_to": row.responds_to,
                "evidence_count": row.evidence_count,
            }
        )
    query = select(timeline).where(*_in_scope(timeline, scope, as_of))
    if unit is not None:
        query = query.where((timeline.c.unit_id == unit) | timeline.c.unit_id.is_(None))
    for row in await session.execute(query):
        if indicator is not None and row.indicator not in (None, indicator):
            continue
        entries.append(
            {
                "sequence": row.sequence,
                "event_id": row.event_id,
                "type": row.type,
                "recorded_at": row.recorded_at,
                "by": row.actor,
                "unit_id": row.unit_id,
                "indicator": row.indicator,
                "data": json.loads(row.data),
            }
        )
    return sorted(entries, key=lambda entry: entry["sequence"])


async def periods_with_data(session: AsyncSession, catalogue_id: str, version: str, stage: str) -> list[int]:
    """The periods of a catalogue version that have anything to show in a stage, oldest first."""
    if stage == "published":
        query = select(timeline.c.period).where(timeline.c.type == ResultPublished.type)
        table = timeline
    else:
        query = select(measurement_history.c.period).where(measurement_history.c.stage == stage)
        table = measurement_history
    query = query.where(table.c.catalogue_id == catalogue_id, table.c.version == version).distinct()
    return sorted((await session.execute(query)).scalars())
