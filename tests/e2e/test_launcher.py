"""The embedded launcher keeps the system up: a service killed with SIGKILL is started again (with
back-off) and carries on from its stored position; nothing accepted is lost. On the old main,
`make run` stopped everything when one service died."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from kpi_launcher import embedded
from kpi_launcher.cli import Supervisor
from kpi_launcher.registry import SERVICES
from tests.e2e.conftest import start_running_system

pytestmark = pytest.mark.e2e


def test_a_killed_service_is_restarted_and_catches_up(tmp_path: Path) -> None:
    urls = {name: f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}" for name in SERVICES}
    running = start_running_system(tmp_path, urls)
    supervisor = Supervisor(running.system)
    try:
        killed = running.system.services["reporting"]
        os.kill(killed.process.pid, signal.SIGKILL)
        body = {
            "catalogue_id": "vn-dti-province",
            "catalogue_version": "1.0",
            "period": 2024,
            "unit_id": "gia-lai",
            "indicator": "1.6",
            "inputs": {"a": True},
        }
        accepted = running.post("gia-lai", "/v1/measurements", body, "while-reporting-is-down")
        assert accepted.status_code == 201, accepted.text  # ingest goes on alone
        deadline = time.monotonic() + 30
        while running.system.services["reporting"] is killed or running.system.services["reporting"].process.poll():
            assert time.monotonic() < deadline, "reporting was not restarted"
            supervisor.check(time.monotonic())
            time.sleep(0.2)
        restarted = running.system.services["reporting"]
        assert restarted.process.pid != killed.process.pid and restarted.port == killed.port
        embedded.wait_ready(restarted)
        query = {"catalogue": "vn-dti-province", "version": "1.0", "period": 2024}
        found = running.wait_until_projected(accepted.json()["sequence"], query)
        gia_lai = next(row for row in found["rankings"] if row["unit_id"] == "gia-lai")
        assert gia_lai["status"] == "reported"
        assert httpx.get(f"{restarted.url}/readyz").status_code == 200
    finally:
        running.system.stop()


def test_ingest_stays_ready_without_nats_and_a_projection_without_it_is_not(tmp_path: Path) -> None:
    urls = {name: f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}" for name in SERVICES}
    running = start_running_system(tmp_path, urls)
    try:
        port = int(running.system.nats_url.rsplit(":", 1)[1])
        embedded.stop(running.system.nats)
        ingest, reporting = running.system.services["ingest"], running.system.services["reporting"]

        def readiness(url: str) -> tuple[int, dict[str, object]]:
            answer = httpx.get(f"{url}/readyz", timeout=5)
            return answer.status_code, answer.json()

        running.wait_for(lambda: readiness(reporting.url)[0] == 503, timeout=30)
        body = {
            "catalogue_id": "vn-dti-province",
            "catalogue_version": "1.0",
            "period": 2024,
            "unit_id": "da-nang",
            "indicator": "1.6",
            "inputs": {"a": True},
        }
        accepted = running.post("da-nang", "/v1/measurements", body, "while-nats-is-down")
        assert accepted.status_code == 201, accepted.text
        status, answer = readiness(ingest.url)
        assert status == 200 and answer["status"] == "degraded"
        assert "events wait in the outbox" in str(answer["checks"]["nats"])  # type: ignore[index]
        running.system.nats = embedded.start_nats(port, tmp_path / "nats")
        query = {"catalogue": "vn-dti-province", "version": "1.0", "period": 2024}
        found = running.wait_until_projected(accepted.json()["sequence"], query)
        assert next(row for row in found["rankings"] if row["unit_id"] == "da-nang")["status"] == "reported"
        running.wait_for(
            lambda: (
                readiness(ingest.url)
                == (200, {"status": "ready", "checks": {"database": "ok", "log integrity": "ok", "nats": "ok"}})
            )
        )
    finally:
        running.system.stop()


def start_run(var_dir: Path) -> subprocess.Popen[str]:
    """`kpi-ledger run` in a session of its own (as a terminal runs it: Ctrl-C reaches the whole group)."""
    env = {**os.environ, "KPI_NATS_PORT": str(embedded.free_port())}
    env |= {f"{service.env_prefix}PORT": str(embedded.free_port()) for service in SERVICES.values()}
    command = [sys.executable, "-m", "kpi_launcher.cli", "run", "--var", str(var_dir)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "Ctrl-C stops everything" in line:
            return process
    raise AssertionError(f"kpi-ledger run ended before it was running (exit {process.wait()})")


def stopped_by_ctrl_c(process: subprocess.Popen[str]) -> str:
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    return output


@pytest.mark.parametrize("nats_first", [False, True], ids=["running", "nats-already-gone"])
def test_ctrl_c_stops_everything_without_a_traceback(tmp_path: Path, nats_first: bool) -> None:
    process = start_run(tmp_path / "var")
    if nats_first:  # the services are reconnecting when they are asked to stop: a drain would raise
        nats = subprocess.run(["pgrep", "-s", str(process.pid), "-f", "nats-server"], capture_output=True, text=True)
        for pid in nats.stdout.split():
            os.kill(int(pid), signal.SIGKILL)
        time.sleep(2)
    output = stopped_by_ctrl_c(process)
    assert "kpi-ledger: stopping" in output
    logs = {path.name: path.read_text() for path in (tmp_path / "var" / "logs").glob("*.log")}
    assert set(logs) >= {"ingest.log", "scoring.log", "reporting.log"}
    for name, text in {"kpi-ledger run": output, **logs}.items():
        assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"
    leftover = subprocess.run(["pgrep", "-s", str(process.pid)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "processes left after Ctrl-C"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_service_asked_to_stop_drains_and_exits_0_without_a_traceback(tmp_path: Path, signum: int) -> None:
    """What a supervisor (systemd, Kubernetes, `kpi-ledger run`) sends: each service stops cleanly and
    says so with exit 0 (uvicorn alone re-raises the signal: exit 143, counted as a failure)."""
    urls = {name: f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}" for name in SERVICES}
    running = start_running_system(tmp_path, urls)
    try:
        accepted = running.post(
            "da-nang",
            "/v1/measurements",
            {
                "catalogue_id": "vn-dti-province",
                "catalogue_version": "1.0",
                "period": 2024,
                "unit_id": "da-nang",
                "indicator": "1.6",
                "inputs": {"a": True},
            },
            "before-the-stop",
        )
        assert accepted.status_code == 201, accepted.text
        for name, service in running.system.services.items():
            service.process.send_signal(signum)
            assert service.process.wait(timeout=30) == 0, name
            log = service.log_file.read_text() if service.log_file else ""
            assert "Traceback" not in log, f"{name}:\n{log[-3000:]}"
    finally:
        running.system.stop()
