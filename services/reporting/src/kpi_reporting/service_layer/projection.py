"""Applying events to the reporting history: catalogues and measurements, appended in order."""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.catalogue_store import CatalogueStore
from kpi_common.db import insert_ignoring_duplicates
from kpi_core.events import CatalogueVersionRegistered, EventEnvelope, MeasurementRecorded, decode_event
from kpi_reporting.adapters.orm import measurement_history


class HistoryProjection:
    def __init__(self, catalogues: CatalogueStore) -> None:
        self.catalogues = catalogues

    async def apply(self, session: AsyncSession, envelope: EventEnvelope) -> None:
        event = decode_event(envelope)
        if isinstance(event, CatalogueVersionRegistered):
            await self.catalogues.store(session, event)
        elif isinstance(event, MeasurementRecorded):
            row = {
                "sequence": envelope.sequence,
                "event_id": envelope.id,
                "recorded_at": envelope.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "catalogue_id": event.catalogue_id,
                "version": event.catalogue_version,
                "period": event.period,
                "stage": event.stage,
                "unit_id": event.unit_id,
                "indicator": event.indicator,
                "inputs": json.dumps(event.inputs, sort_keys=True),
                "not_applicable_reason": event.not_applicable_reason,
                "submitted_by": event.submitted_by,
            }
            await insert_ignoring_duplicates(session, measurement_history, row)
