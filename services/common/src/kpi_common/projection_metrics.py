"""What Prometheus sees of a projection service: per stream it follows, the position, the stream's
head, the lag in events and in seconds, what was applied, read again, retried and dead-lettered."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client.core import Metric
from sqlalchemy import Table, func, select

from kpi_common.metrics import Probe, counter, gauge
from kpi_common.projection_service import Following, ProjectionService
from kpi_core.events import EventEnvelope

# (name, help) of what each follower counts in the process (`FollowerStats`)
COUNTED = {
    "applied": ("kpi_consumer_applied_events", "Events applied since the service started"),
    "rereads": ("kpi_consumer_rereads", "Times the stream was read again from the position"),
    "retries": ("kpi_consumer_retries", "Failed attempts to apply an event"),
}


LAG_TIMEOUT = 1.0  # seconds a scrape waits for the stream: during a cluster's election it may not answer


async def _lag(following: Following, position: int) -> tuple[int, float]:
    """The stream's last sequence, and the age in seconds of the oldest event not applied yet."""
    client = following.follower.nats
    if client is None or not client.is_connected:
        raise ConnectionError("not connected to NATS")
    js = client.jetstream(timeout=LAG_TIMEOUT)
    head = (await js.stream_info(following.stream.name)).state.last_seq
    if head <= position:
        return head, 0.0
    oldest = await js.get_msg(following.stream.name, seq=position + 1)
    recorded = EventEnvelope.from_bytes(oldest.data or b"").time
    return head, max(0.0, (datetime.now(UTC) - recorded).total_seconds())


def projection_probe(service: ProjectionService, dead_letters: Table) -> Probe:
    async def consumers() -> Iterable[Metric]:
        families: list[Metric] = []
        async with service.sessions() as session:
            positions = [await following.tracking.position(session) for following in service.followings]
            counted = select(dead_letters.c.consumer, func.count()).group_by(dead_letters.c.consumer)
            rows = await session.execute(counted)
            dead = {consumer: count for consumer, count in rows}
        for following, position in zip(service.followings, positions, strict=True):
            labels = {"consumer": following.follower.name, "stream": following.stream.name}
            stats = following.follower.stats
            families.append(gauge("kpi_consumer_position", "Last sequence applied", labels, position))
            families += [counter(name, text, labels, getattr(stats, field)) for field, (name, text) in COUNTED.items()]
            dead_lettered = dead.get(labels["consumer"], 0)
            families.append(gauge("kpi_consumer_dead_letters", "Events kept as dead letters", labels, dead_lettered))
            waited = "Seconds events have waited that could not be applied (0: moving or caught up)"
            families.append(gauge("kpi_consumer_stalled_seconds", waited, labels, stats.stalled_for()))
            try:
                head, age = await _lag(following, position)
            except Exception:  # NATS away or electing: the lag is unknown, the rest is still true
                continue
            families.append(gauge("kpi_stream_last_sequence", "The stream's last sequence", labels, head))
            behind = max(0, head - position)
            families.append(gauge("kpi_consumer_lag_events", "Events on the stream not applied yet", labels, behind))
            families.append(gauge("kpi_consumer_lag_seconds", "Age of the oldest event not applied yet", labels, age))
        return families

    return consumers
