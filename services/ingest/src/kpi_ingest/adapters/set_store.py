"""What a measurement set decides on, read from the log under the append lock, and the record of each
set that stored something (what a request repeated with its Idempotency-Key answers)."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import insert, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_core.assessment import LatestVerification
from kpi_core.deciders import SelfAssessment, VerificationState
from kpi_core.events import UPCASTERS, MeasurementRecorded, decode_event
from kpi_core.measurement_sets import SetScope, Subject
from kpi_core.set_proof import SetRecordRow, recorded_summary
from kpi_core.verification_sets import ComponentState
from kpi_ingest.adapters.event_store import _stored
from kpi_ingest.adapters.orm import closed_periods, events, measurement_sets, reopened_units, subject_under

UNITS_PER_QUERY = 200  # units of one statement (SQLite takes at most 500 parts of a UNION ALL)


@dataclass(frozen=True)
class SetRecord:
    set_id: str
    request_sha256: str
    summary: dict[str, Any]


class _StoredMeasurement(BaseModel):
    """A stored measurement's envelope, only its data read (validated as the event, in one pass over the text)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    data: MeasurementRecorded


def _measurement(row: Any) -> MeasurementRecorded | None:
    """A stored measurement event; read straight from its data unless an upcaster must read it first."""
    if MeasurementRecorded.type in UPCASTERS:
        event = decode_event(_stored(row).envelope)
        return event if isinstance(event, MeasurementRecorded) else None
    return _StoredMeasurement.model_validate_json(row.envelope).data


class SetStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def latest_self_assessments(
        self, scope: SetScope, units: Collection[str]
    ) -> dict[Subject, MeasurementRecorded]:
        """The latest self-assessment of each component of these units in the set's scope."""
        prefix = f"{scope.catalogue_id}/{scope.catalogue_version}/{scope.period}/"
        latest: dict[Subject, MeasurementRecorded] = {}
        ordered = sorted(units)
        for start in range(0, len(ordered), UNITS_PER_QUERY):
            # a range of the subject index per unit, one query: SQLite reads OR-ed ranges as a scan of the log
            of_units = union_all(
                *(
                    select(events.c.sequence, events.c.envelope, events.c.request_sha256).where(
                        events.c.type == MeasurementRecorded.type, subject_under(f"{prefix}{unit}/")
                    )
                    for unit in ordered[start : start + UNITS_PER_QUERY]
                )
            )
            rows = await self.session.execute(of_units.order_by(of_units.selected_columns.sequence))
            for row in rows:
                event = _measurement(row)
                # a unit's prefix is also the start of any unit named after it and a slash
                if event is not None and event.stage == "self_assessment" and event.unit_id in units:
                    latest[(event.unit_id, event.indicator)] = event
        return latest

    async def closed_for(self, scope: SetScope, units: Collection[str]) -> frozenset[str]:
        """The units whose submissions are closed: all but the reopened ones, once the period is closed."""
        where = {"catalogue_id": scope.catalogue_id, "version": scope.catalogue_version, "period": scope.period}
        if await self.session.scalar(select(closed_periods.c.sequence).filter_by(**where)) is None:
            return frozenset()
        reopened = set(await self.session.scalars(select(reopened_units.c.unit_id).filter_by(**where)))
        return frozenset(unit for unit in units if unit not in reopened)

    async def component_states(self, scope: SetScope, unit_id: str) -> dict[str, ComponentState]:
        return await component_states(self.session, scope, unit_id)

    async def by_idempotency_key(self, actor: str, key: str) -> SetRecord | None:
        row = (
            await self.session.execute(
                select(measurement_sets).where(
                    measurement_sets.c.actor == actor, measurement_sets.c.idempotency_key == key
                )
            )
        ).first()
        if row is None:
            return None
        summary = json.loads(row.summary)
        if summary.get("stored"):  # its sequences are the record's columns (a legacy record of nothing has none)
            summary |= {"first_sequence": row.first_sequence, "last_sequence": row.last_sequence}
        return SetRecord(row.set_id, row.request_sha256, summary)

    async def records(self) -> list[SetRecordRow]:
        """Every set record, in the order of its events (what the verifier holds to the log)."""
        rows = await self.session.execute(select(measurement_sets).order_by(measurement_sets.c.first_sequence))
        return [
            SetRecordRow(
                row.set_id,
                row.actor,
                row.idempotency_key,
                row.request_sha256,
                row.first_sequence,
                row.last_sequence,
                row.summary,
            )
            for row in rows
        ]

    async def record(
        self,
        record: SetRecord,
        *,
        actor: str,
        idempotency_key: str,
        first_sequence: int,
        last_sequence: int,
    ) -> None:
        await self.session.execute(
            insert(measurement_sets).values(
                set_id=record.set_id,
                actor=actor,
                idempotency_key=idempotency_key,
                request_sha256=record.request_sha256,
                first_sequence=first_sequence,
                last_sequence=last_sequence,
                summary=recorded_summary(record.summary),
            )
        )


async def component_states(session: AsyncSession, scope: SetScope, unit_id: str) -> dict[str, ComponentState]:
    """Each component of a unit in a scope: its latest self-assessment, its latest verification and
    the self-assessment that verification decided on (the log in sequence order)."""
    rows = await session.execute(
        select(events.c.envelope, events.c.request_sha256)
        .where(
            events.c.type == MeasurementRecorded.type,
            subject_under(f"{scope.catalogue_id}/{scope.catalogue_version}/{scope.period}/{unit_id}/"),
        )
        .order_by(events.c.sequence)
    )
    states: dict[str, ComponentState] = {}
    for row in rows:
        stored = _stored(row)
        event = decode_event(stored.envelope)
        if not isinstance(event, MeasurementRecorded) or event.unit_id != unit_id:  # see latest_self_assessments
            continue
        state = states.get(event.indicator, ComponentState(VerificationState()))
        if event.stage == "self_assessment":
            verification = replace(state.verification, self_assessment=SelfAssessment(event, stored.envelope.id))
            states[event.indicator] = replace(state, verification=verification)
        else:
            latest = LatestVerification(stored.envelope.id, event.decision or "", event.reason)
            verification = replace(state.verification, latest_verification=latest)
            states[event.indicator] = ComponentState(verification, event.verifies_event_id)
    return states
