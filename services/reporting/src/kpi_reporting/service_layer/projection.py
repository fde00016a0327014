"""Applying events to the reporting history: catalogues, measurements and the workflow timeline, in order.

A batch's measurement and timeline rows are written once, at its end (`finish_batch`), in its transaction."""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncSession

from kpi_common.auth import KeyStore
from kpi_common.catalogue_store import CatalogueStore, PeerGroupStore
from kpi_common.db import insert_ignoring_duplicates
from kpi_core.events import (
    ApiKeyGranted,
    ApiKeyRevoked,
    CatalogueVersionRegistered,
    ContextReported,
    EventEnvelope,
    EvidenceRequested,
    MeasurementRecorded,
    PeerGroupRegistered,
    PeriodClosed,
    ResultPublished,
    UnitReopened,
    decode_event,
)
from kpi_reporting.adapters.orm import measurement_history, timeline

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
TimelineEvent = EvidenceRequested | PeriodClosed | UnitReopened | ContextReported | ResultPublished


class HistoryProjection:
    def __init__(self, catalogues: CatalogueStore, peer_groups: PeerGroupStore, keys: KeyStore) -> None:
        self.catalogues = catalogues
        self.peer_groups = peer_groups
        self.keys = keys
        self._session: AsyncSession | None = None
        self._measurements: list[dict[str, object]] = []
        self._timeline: list[dict[str, object]] = []

    def _current(self, session: AsyncSession) -> None:
        if session is not self._session:  # a new batch, or its retry after a rollback
            self._session, self._measurements, self._timeline = session, [], []

    async def finish_batch(self, session: AsyncSession, last_sequence: int) -> None:
        self._current(session)
        await insert_ignoring_duplicates(session, measurement_history, self._measurements)
        await insert_ignoring_duplicates(session, timeline, self._timeline)
        self._session = None

    async def apply(self, session: AsyncSession, envelope: EventEnvelope) -> None:
        self._current(session)
        event = decode_event(envelope)
        if isinstance(event, CatalogueVersionRegistered):
            await self.catalogues.store(session, event)
        elif isinstance(event, PeerGroupRegistered):
            await self.peer_groups.store(session, event, envelope.sequence)
        elif isinstance(event, MeasurementRecorded):
            self._measurements.append(_measurement_row(event, envelope))
        elif isinstance(event, ApiKeyGranted | ApiKeyRevoked):
            await self.keys.apply(session, event, envelope.sequence, envelope.time)
        elif isinstance(event, TimelineEvent):
            self._timeline.append(_timeline_row(event, envelope))


def _measurement_row(event: MeasurementRecorded, envelope: EventEnvelope) -> dict[str, object]:
    return {
        "sequence": envelope.sequence,
        "event_id": envelope.id,
        "recorded_at": envelope.time.strftime(TIME_FORMAT),
        "catalogue_id": event.catalogue_id,
        "version": event.catalogue_version,
        "period": event.period,
        "stage": event.stage,
        "unit_id": event.unit_id,
        "indicator": event.indicator,
        "inputs": json.dumps(event.inputs, sort_keys=True),
        "not_applicable_reason": event.not_applicable_reason,
        "submitted_by": event.submitted_by,
        "decision": event.decision,
        "reason": event.reason,
        "verifies_event_id": event.verifies_event_id,
        "responds_to": event.responds_to,
        "evidence_count": len(event.evidence),
    }


def _timeline_row(event: TimelineEvent, envelope: EventEnvelope) -> dict[str, object]:
    actor = next(
        getattr(event, name)
        for name in ("requested_by", "closed_by", "reopened_by", "submitted_by", "published_by")
        if hasattr(event, name)
    )
    return {
        "sequence": envelope.sequence,
        "event_id": envelope.id,
        "type": envelope.type,
        "recorded_at": envelope.time.strftime(TIME_FORMAT),
        "catalogue_id": event.catalogue_id,
        "version": event.catalogue_version,
        "period": event.period,
        "unit_id": getattr(event, "unit_id", None),
        "indicator": getattr(event, "indicator", None),
        "actor": actor,
        "data": json.dumps(envelope.data, ensure_ascii=False, sort_keys=True),
    }
