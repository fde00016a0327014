"""What Prometheus sees of an outbox and its relay: how many rows wait, how old the oldest is, how
many left, how many passes failed, how many were withheld (replaced by a placeholder on the stream,
since no retry could publish them). Alerts watch a depth or an age that only grows, and any withheld."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import Metric
from sqlalchemy import Select, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_common.metrics import Probe, counter, gauge
from kpi_common.relay import Relay
from kpi_core.events import EventEnvelope


def outbox_probe(
    sessions: async_sessionmaker[AsyncSession],
    outbox: Table,
    log: Table,
    relay: Relay,
    stream: str,
    withheld: Select[Any],
) -> Probe:
    """`outbox` and `log` both keyed by `sequence`; `log.envelope` holds the stored CloudEvent;
    `withheld` counts the rows the service recorded as withheld (all time)."""

    async def outbox_and_relay() -> Iterable[Metric]:
        async with sessions() as session:
            depth, oldest = (await session.execute(select(func.count(), func.min(outbox.c.sequence)))).one()
            envelope = await session.scalar(select(log.c.envelope).where(log.c.sequence == oldest)) if oldest else None
            withheld_ever = int(await session.scalar(withheld) or 0)
        age = 0.0
        if envelope is not None:
            recorded = EventEnvelope.from_bytes(envelope.encode("utf-8")).time
            age = max(0.0, (datetime.now(UTC) - recorded).total_seconds())
        labels = {"stream": stream}
        return [
            gauge("kpi_outbox_depth", "Events stored and not yet on the stream", labels, depth),
            gauge("kpi_outbox_oldest_seconds", "Age of the oldest event not yet on the stream", labels, age),
            counter(
                "kpi_relay_published_events",
                "Events the relay put on the stream since the start",
                labels,
                relay.published,
            ),
            counter(
                "kpi_relay_failures",
                "Relay passes that failed (NATS or the database unavailable)",
                labels,
                relay.failures,
            ),
            counter(
                "kpi_relay_withheld_events",
                "Events the relay could not publish and replaced by a placeholder on the stream, since the start",
                labels,
                relay.withheld,
            ),
            gauge(
                "kpi_outbox_withheld_events",
                "Events withheld from the stream (a placeholder in their place), as recorded, all time",
                labels,
                withheld_ever,
            ),
        ]

    return outbox_and_relay
