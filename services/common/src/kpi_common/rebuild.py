"""Rebuild a projection from the event stream: wipe its tables, replay every event, stop when caught up.

Run it with the service stopped. The durable consumer is deleted and recreated from the first
event, so the replay goes through exactly the same loop, tracking and handlers as live operation.
"""

from __future__ import annotations

import asyncio
import contextlib

from nats.js.errors import NotFoundError
from sqlalchemy import MetaData, delete

from kpi_common.messaging import connect
from kpi_common.projection_service import ProjectionService
from kpi_common.streams import STREAM_NAME, ensure_stream


async def rebuild(service: ProjectionService, metadata: MetaData, nats_url: str, timeout: float = 600.0) -> int:
    """Returns the position reached (the last event sequence applied)."""
    durable = service.tracking.consumer
    async with service.sessions() as session:
        for table in reversed(metadata.sorted_tables):
            await session.execute(delete(table))
        await session.commit()
    client = await connect(nats_url, f"kpi-rebuild-{durable}")
    try:
        js = client.jetstream()
        await ensure_stream(js)
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(STREAM_NAME, durable)
        service.start()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            await asyncio.sleep(0.2)
            with contextlib.suppress(NotFoundError):
                info = await js.consumer_info(STREAM_NAME, durable)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    break
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{durable} did not catch up within {timeout}s")
    finally:
        await service.close()
        await client.drain()
    async with service.sessions() as session:
        return await service.tracking.position(session)
