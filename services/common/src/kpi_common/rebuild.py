"""Rebuild a projection from its streams: empty its tables, replay every event, stop when caught up.

Run it with the service stopped. A table marked `info={"kept_on_rebuild": True}` is the service's
own record (scoring's score log: what it already published must keep its sequence) and is kept.
The replay goes through exactly the same loop, tracking and handlers as live operation (the loop
reads each stream from the projection's position, 0 after the emptying).
Nothing is emptied unless NATS and the streams answer first.
"""

from __future__ import annotations

import asyncio
import sys
import time

from nats.js.errors import NotFoundError
from sqlalchemy import MetaData, delete

from kpi_common.consumer import REPLAY_BATCH
from kpi_common.messaging import connect
from kpi_common.projection_service import ProjectionService
from kpi_common.streams import EVENTS, Stream
from kpi_core.events import EventEnvelope


class StreamUnavailable(RuntimeError):
    pass


async def last_event_sequence(nats_url: str, stream: Stream = EVENTS) -> int:
    """The sequence of the last event on the stream (0 when it is empty); raises StreamUnavailable."""
    try:
        client = await asyncio.wait_for(connect(nats_url, "kpi-rebuild-probe"), timeout=10)
    except Exception as error:
        raise StreamUnavailable(f"NATS at {nats_url} does not answer ({type(error).__name__}: {error})") from None
    try:
        js = client.jetstream()
        try:
            info = await js.stream_info(stream.name)
        except NotFoundError:
            raise StreamUnavailable(f"the stream {stream.name} does not exist on {nats_url}") from None
        if info.state.messages == 0:
            return 0
        last = await js.get_msg(stream.name, seq=info.state.last_seq)
        return EventEnvelope.from_bytes(last.data or b"").sequence
    finally:
        await client.close()


async def rebuild(service: ProjectionService, metadata: MetaData, nats_url: str, timeout: float = 3600.0) -> int:
    """Returns the position reached (the last event sequence applied)."""
    followings = service.followings
    targets = [await last_event_sequence(nats_url, following.stream) for following in followings]  # first
    async with service.sessions() as session:
        for table in reversed(metadata.sorted_tables):
            if not table.info.get("kept_on_rebuild"):
                await session.execute(delete(table))
        await session.commit()
    for following in followings:
        following.follower.batch = REPLAY_BATCH
    service.start()
    started = time.monotonic()
    try:
        while True:
            await asyncio.sleep(0.1)
            async with service.sessions() as session:
                positions = [await following.tracking.position(session) for following in followings]
            position, target = positions[0], targets[0]
            elapsed = time.monotonic() - started
            rate = position / elapsed if elapsed else 0.0
            left = (target - position) / rate if rate else float("inf")
            print(f"\r{position}/{target} events, {rate:,.0f}/s, {left:,.0f} s left   ", end="", file=sys.stderr)
            if all(reached >= goal for reached, goal in zip(positions, targets, strict=True)):
                print(file=sys.stderr)
                return position
            if elapsed > timeout:
                raise TimeoutError(f"the rebuild did not catch up within {timeout} s (at {position} of {target})")
    finally:
        await service.close()
