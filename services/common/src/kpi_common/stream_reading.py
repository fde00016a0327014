"""Reading a whole stream once, from its first message to the last one it held when asked: what an
auditor compares the database with (the stream is an independent copy of every event relayed)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import FetchTimeoutError, NotFoundError

from kpi_common.consumer import reading_config
from kpi_common.streams import EVENTS, Stream


class StreamMissing(RuntimeError):
    pass


async def stream_messages(client: Client, stream: Stream = EVENTS, batch: int = 1_000) -> AsyncIterator[list[bytes]]:
    """The payloads of every message, in stream order, a batch at a time."""
    js = client.jetstream()
    try:
        info = await js.stream_info(stream.name)
    except NotFoundError:
        raise StreamMissing(f"the stream {stream.name} does not exist") from None
    last = info.state.last_seq
    if info.state.messages == 0:
        return
    subscription = await js.pull_subscribe(stream.subjects[0], stream=stream.name, config=reading_config(0, stream))
    try:
        reached = 0
        while reached < last:
            try:
                messages = await subscription.fetch(batch, timeout=5.0)
            except (TimeoutError, FetchTimeoutError, NatsTimeoutError):
                raise StreamMissing(f"the stream {stream.name} stopped answering at message {reached}") from None
            reached = messages[-1].metadata.sequence.stream
            yield [message.data for message in messages if message.metadata.sequence.stream <= last]
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
