"""The JetStream streams, declared once here: the event log, and the scores scoring computed from it.

`deploy/nats/jetstream.json` is generated from this declaration (`kpi-ledger nats-config`) and a
test keeps the two equal. Services create it idempotently at start. There are no durable
consumers: every projection (and the sync job) reads the stream from its own stored position with
an ephemeral reader (`kpi_common.consumer`), so nothing depends on server-side redelivery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from kpi_core.events import EventEnvelope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stream:
    name: str
    subjects: tuple[str, ...]
    description: str
    replay_batch: int = 20_000  # messages applied per transaction in a rebuild (memory-sized: ~10 MB more than 5,000)


EVENTS = Stream(
    "KPI_EVENTS",
    ("kpi.>",),
    "kpi-ledger events (CloudEvents 1.0), one message per stored event, in sequence order",
)
SCORES = Stream(
    "KPI_SCORES",
    ("kpi-scores.>",),
    "kpi-ledger scores (CloudEvents 1.0) computed by the scoring service from the events, in score sequence order",
    replay_batch=100,  # a score event carries up to 1,000 score lines
)
STREAM_NAME = EVENTS.name
STREAM_SUBJECTS = list(EVENTS.subjects)
DUPLICATE_WINDOW_SECONDS = 120.0
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def stream_config(replicas: int = 1, stream: Stream = EVENTS) -> StreamConfig:
    """Messages are kept forever (limits retention, no age limit): each stream is a replayable log."""
    return StreamConfig(
        name=stream.name,
        description=stream.description,
        subjects=list(stream.subjects),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_msg_size=MAX_MESSAGE_BYTES,
        deny_delete=True,
        deny_purge=True,
    )


def declarations(replicas: int = 1) -> dict[str, Any]:
    """Everything declared, as plain data (the shape of deploy/nats/jetstream.json)."""
    return {
        "stream": stream_config(replicas).as_dict(),
        "score_stream": stream_config(replicas, SCORES).as_dict(),
    }


async def head_sequence(js: JetStreamContext, stream: Stream = EVENTS) -> int:
    """The sequence of the last event the stream holds, as its envelope says (0 when it is empty);
    raises NotFoundError when there is no such stream."""
    info = await js.stream_info(stream.name)
    if info.state.messages == 0:
        return 0
    last = await js.get_msg(stream.name, seq=info.state.last_seq)
    return EventEnvelope.from_bytes(last.data or b"").sequence


async def ensure_stream(js: JetStreamContext, replicas: int | None = None, stream: Stream = EVENTS) -> None:
    """Create the stream with `replicas` (None: one), or bring an existing one to the declared
    configuration.

    Replicas are never lowered: the streams are shared by every service (and sync job), and one
    service left at `KPI_*_STREAM_REPLICAS=1` must not take an R3 stream down to one copy when it
    restarts. An existing stream keeps its replica count when fewer are asked for (a warning says
    so: lower it on purpose with the `nats` CLI), and is raised when more are (moving the streams
    onto a cluster is setting 3 everywhere). A caller with no opinion (None, a sync job) keeps
    whatever the stream has, silently."""
    try:
        info = await js.stream_info(stream.name)
    except NotFoundError:
        try:
            await js.add_stream(stream_config(replicas or 1, stream))
            return
        except BadRequestError:  # created concurrently by another service: update what it created
            info = await js.stream_info(stream.name)
    current = info.config.num_replicas or 1
    if replicas is not None and replicas < current:
        log.warning(
            "stream %s keeps its %d replicas: this service's STREAM_REPLICAS asks for %d, "
            "and replicas are never lowered at start",
            stream.name,
            current,
            replicas,
        )
    await js.update_stream(stream_config(max(replicas or 1, current), stream))
