"""The assessment workflow's state and look-ups in the event log: closed periods, reopened units,
the self-assessments an evaluator verifies, evidence requests, publications."""

from __future__ import annotations

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from kpi_core.assessment import SubmissionWindows
from kpi_core.events import EvidenceRequested, MeasurementRecorded, ResultPublished, decode_event
from kpi_ingest.adapters.event_store import StoredEvent, _stored
from kpi_ingest.adapters.orm import closed_periods, events, reopened_units, subject_under

# asked on every submission, so built once
CLOSED_PERIOD = select(closed_periods.c.sequence).where(
    closed_periods.c.catalogue_id == bindparam("catalogue_id"),
    closed_periods.c.version == bindparam("version"),
    closed_periods.c.period == bindparam("period"),
)


class WorkflowStore:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def close_period(self, catalogue_id: str, version: str, period: int, sequence: int) -> None:
        scope = {"catalogue_id": catalogue_id, "version": version, "period": period}
        await self.session.execute(delete(reopened_units).filter_by(**scope))
        await self.session.execute(delete(closed_periods).filter_by(**scope))
        await self.session.execute(insert(closed_periods).values(**scope, sequence=sequence))

    async def reopen_unit(self, catalogue_id: str, version: str, period: int, unit_id: str, sequence: int) -> None:
        scope = {"catalogue_id": catalogue_id, "version": version, "period": period, "unit_id": unit_id}
        await self.session.execute(delete(reopened_units).filter_by(**scope))
        await self.session.execute(insert(reopened_units).values(**scope, sequence=sequence))

    async def windows(self) -> SubmissionWindows:
        """The submission windows as the tables hold them (what verification compares with the log)."""
        closed = {
            (row.catalogue_id, row.version, row.period): row.sequence
            for row in await self.session.execute(select(closed_periods))
        }
        reopened = {
            (row.catalogue_id, row.version, row.period, row.unit_id): row.sequence
            for row in await self.session.execute(select(reopened_units))
        }
        return SubmissionWindows(closed, reopened)

    async def is_closed(self, catalogue_id: str, version: str, period: int) -> bool:
        scope = {"catalogue_id": catalogue_id, "version": version, "period": period}
        return await self.session.scalar(CLOSED_PERIOD, scope) is not None

    async def accepts_submissions(self, catalogue_id: str, version: str, period: int, unit_id: str) -> bool:
        if not await self.is_closed(catalogue_id, version, period):
            return True
        scope = {"catalogue_id": catalogue_id, "version": version, "period": period, "unit_id": unit_id}
        return await self.session.scalar(select(reopened_units.c.sequence).filter_by(**scope)) is not None

    async def _of_subject(self, event_type: str, subject: str) -> list[StoredEvent]:
        rows = await self.session.execute(
            select(events.c.envelope, events.c.request_sha256)
            .where(events.c.type == event_type, events.c.subject == subject)
            .order_by(events.c.sequence)
        )
        return [_stored(row) for row in rows]

    async def latest_self_assessment(self, subject: str) -> tuple[MeasurementRecorded, StoredEvent] | None:
        return await self._latest_of_stage(subject, "self_assessment")

    async def latest_verification(self, subject: str) -> tuple[MeasurementRecorded, StoredEvent] | None:
        return await self._latest_of_stage(subject, "verification")

    async def _latest_of_stage(self, subject: str, stage: str) -> tuple[MeasurementRecorded, StoredEvent] | None:
        found = None
        for stored in await self._of_subject(MeasurementRecorded.type, subject):
            event = decode_event(stored.envelope)
            if isinstance(event, MeasurementRecorded) and event.stage == stage:
                found = (event, stored)
        return found

    async def evidence_request(self, event_id: str) -> EvidenceRequested | None:
        row = (
            await self.session.execute(
                select(events.c.envelope, events.c.request_sha256).where(
                    events.c.event_id == event_id, events.c.type == EvidenceRequested.type
                )
            )
        ).first()
        event = decode_event(_stored(row).envelope) if row else None
        return event if isinstance(event, EvidenceRequested) else None

    async def measurements(
        self, catalogue_id: str, version: str, period: int, stage: str
    ) -> list[tuple[MeasurementRecorded, str, int]]:
        """Every measurement of a scope in sequence order, as (event, event id, sequence)."""
        rows = await self.session.execute(
            select(events.c.envelope, events.c.request_sha256)
            .where(
                events.c.type == MeasurementRecorded.type,
                subject_under(f"{catalogue_id}/{version}/{period}/"),
            )
            .order_by(events.c.sequence)
        )
        found = []
        for row in rows:
            stored = _stored(row)
            event = decode_event(stored.envelope)
            if isinstance(event, MeasurementRecorded) and event.stage == stage:
                found.append((event, stored.envelope.id, stored.sequence))
        return found

    async def latest_publication(self, catalogue_id: str, version: str, period: int) -> ResultPublished | None:
        published = await self._of_subject(ResultPublished.type, f"{catalogue_id}/{version}/{period}")
        event = decode_event(published[-1].envelope) if published else None
        return event if isinstance(event, ResultPublished) else None
