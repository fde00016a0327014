"""deploy/nats/cluster/node.conf really forms a JetStream cluster the services run on, losing a node."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kpi_common.migrations import upgrade
from kpi_common.projection_service import build_projection_service
from kpi_ingest.entrypoints.outbox_relay import OutboxRelay
from kpi_ingest.service_layer.unit_of_work import UnitOfWork
from kpi_launcher import embedded
from kpi_reporting import MIGRATIONS_DIR as REPORTING_MIGRATIONS
from kpi_reporting.adapters import orm as reporting_orm
from tests.conftest import ROOT
from tests.integration.helpers import outbox_size, record_some, reporting_history, wait_until

NODE_CONFIG = ROOT / "deploy" / "nats" / "cluster" / "node.conf"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    client_ports = [embedded.free_port() for _ in range(3)]
    route_ports = [embedded.free_port() for _ in range(3)]
    routes = {f"NATS_ROUTE_{i + 1}": f"nats-route://127.0.0.1:{port}" for i, port in enumerate(route_ports)}
    nodes = []
    for index in range(3):
        env = {
            **os.environ,
            **routes,
            "NATS_NAME": f"n{index + 1}",
            "NATS_HOST": "127.0.0.1",
            "NATS_PORT": str(client_ports[index]),
            "NATS_CLUSTER_PORT": str(route_ports[index]),
            "NATS_STORE": str(tmp_path / f"n{index + 1}"),
        }
        command = [embedded.nats_server_binary(), "-c", str(NODE_CONFIG)]
        nodes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for port, node in zip(client_ports, nodes, strict=True):
        embedded.wait_for_port(port, process=node)
    yield ",".join(f"nats://127.0.0.1:{port}" for port in client_ports), nodes
    for node in nodes:
        embedded.stop(node)


async def test_events_flow_through_a_three_node_cluster_that_loses_a_node(
    cluster: tuple[str, list[subprocess.Popen[bytes]]], ingest_sessions, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    nats_url, nodes = cluster
    sessions, registry = ingest_sessions
    relay = OutboxRelay(sessions, nats_url, replicas=3)
    relay_task = asyncio.create_task(relay.run())
    reporting_url = f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"
    upgrade(REPORTING_MIGRATIONS, reporting_url)
    history = reporting_history()
    projection = build_projection_service(
        database_url=reporting_url,
        nats_url=nats_url,
        consumer="reporting",
        replicas=3,
        positions=reporting_orm.consumer_positions,
        dead_letters=reporting_orm.dead_letters,
        apply=history.apply,
        finish_batch=history.finish_batch,
    )
    projection.start()
    await record_some(lambda: UnitOfWork(sessions), registry, 20)

    async def at(sequence: int) -> bool:
        async with projection.sessions() as session:
            return await projection.tracking.position(session) == sequence

    await wait_until(lambda: at(22), timeout=60)
    embedded.stop(nodes[0])  # one of three nodes goes away; replicas=3 keeps a quorum of two
    await record_some(lambda: UnitOfWork(sessions), registry, 20, start=20)
    await wait_until(lambda: at(42), timeout=60)
    async with projection.sessions() as session:
        rows = await session.scalar(select(func.count()).select_from(reporting_orm.measurement_history))
    await projection.close()
    await relay.stop()
    relay_task.cancel()
    assert rows == 40
    assert await outbox_size(sessions) == 0
