"""The streams are shared by every service: one that asks for fewer replicas than a stream has (its
`KPI_*_STREAM_REPLICAS` left at the default 1) never takes it down when it starts; asking for more
raises it (issue 15). On a real three-node JetStream cluster (deploy/nats/cluster/node.conf); on
the old code the first test found the event stream at one replica."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext

from kpi_common.streams import EVENTS, SCORES, Stream, ensure_stream
from tests.e2e.fault_systems import NatsCluster


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JetStreamContext]:
    cluster = NatsCluster.start(tmp_path)
    client = await nats.connect(servers=cluster.url.split(","))
    try:
        yield client.jetstream(timeout=5)
    finally:
        await client.close()
        cluster.stop()


async def declared(js: JetStreamContext, replicas: int | None, stream: Stream = EVENTS) -> tuple[int, int]:
    """Ensure the stream as a service asking for `replicas` does; then its replica count and how many
    peers follow its leader, once they all have joined. A new cluster may still be electing its
    leaders: retried for 30 s."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            await ensure_stream(js, replicas, stream)
            break
        except Exception:  # no meta leader yet, or too few peers known to place three replicas
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)
    while True:
        info = await js.stream_info(stream.name)
        count = info.config.num_replicas or 1
        followers = len(info.cluster.replicas or []) if info.cluster else 0
        if followers == count - 1 or asyncio.get_running_loop().time() > deadline:
            return count, followers
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("stream", [EVENTS, SCORES], ids=lambda stream: stream.name)
async def test_a_service_left_at_one_replica_does_not_take_a_three_replica_stream_down(
    js: JetStreamContext, stream: Stream, caplog: pytest.LogCaptureFixture
) -> None:
    assert await declared(js, 3, stream) == (3, 2)
    with caplog.at_level(logging.WARNING, logger="kpi_common.streams"):
        assert await declared(js, 1, stream) == (3, 2)  # a service restarted with STREAM_REPLICAS=1
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert f"stream {stream.name} keeps its 3 replicas" in caplog.records[0].getMessage()


async def test_a_caller_with_no_opinion_keeps_the_replicas_silently_and_more_raise_them(
    js: JetStreamContext, caplog: pytest.LogCaptureFixture
) -> None:
    assert await declared(js, None) == (1, 0)  # a new stream, as a sync job declares it: one replica
    assert await declared(js, 3) == (3, 2)  # the services moved onto the cluster: raised
    with caplog.at_level(logging.WARNING, logger="kpi_common.streams"):
        assert await declared(js, None) == (3, 2)  # a sync job starting again
    assert caplog.records == []
