"""The reference sync consumer, killed and restarted mid-stream, ends with exactly the stored events."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e


def start_sync(nats_url: str, out: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "kpi_launcher.cli",
        "sync",
        "--nats",
        nats_url,
        "--durable",
        "test-sync",
        "--out",
        str(out),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []


def post_some(system: RunningSystem, start: int, count: int) -> int:
    last = 0
    for index in range(start, start + count):
        body = {
            "catalogue_id": "hcmc-dti-districts",
            "catalogue_version": "1.0",
            "period": 2024,
            "unit_id": "quan-1",  # a unit of the catalogue's peer group (hcmc-districts) in 2024
            "indicator": "5.1",
            "inputs": {"a": index},
        }
        response = system.post_measurement("quan-1", body, f"sync-{index}")
        assert response.status_code == 201, response.text
        last = response.json()["sequence"]
    return last


def test_the_sync_consumer_survives_kills_and_ends_with_exactly_the_stored_events(
    running: RunningSystem, tmp_path: Path
) -> None:
    out = tmp_path / "national.jsonl"
    consumer = start_sync(running.system.nats_url, out)
    post_some(running, 0, 30)
    running.wait_for(lambda: len(lines(out)) >= 5)
    consumer.send_signal(signal.SIGKILL)  # a crash, mid-stream
    consumer.wait()
    post_some(running, 30, 30)  # more while it is down
    consumer = start_sync(running.system.nats_url, out)
    time.sleep(0.3)
    consumer.send_signal(signal.SIGTERM)  # a clean stop, then a restart
    consumer.wait()
    consumer = start_sync(running.system.nats_url, out)
    last = post_some(running, 60, 10)
    try:
        running.wait_for(lambda: len(lines(out)) >= last, timeout=30)
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.wait()
    admin = {"Authorization": f"Bearer {running.keys['admin']}"}
    stored = running.ingest.get("/v1/events", params={"limit": 1000}, headers=admin).json()["events"]
    copied = lines(out)
    assert [event["sequence"] for event in copied] == list(range(1, last + 1))
    assert copied == stored


def test_the_sync_consumer_says_how_far_it_is_and_when_it_reaches_the_head(
    running: RunningSystem, tmp_path: Path
) -> None:
    last = post_some(running, 100, 5)
    out, progress = tmp_path / "copy.jsonl", tmp_path / "sync.stderr"
    command = [sys.executable, "-m", "kpi_launcher.cli", "sync", "--nats", running.system.nats_url]
    command += ["--durable", "progress-sync", "--out", str(out)]
    with progress.open("wb") as stderr:
        consumer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            running.wait_for(lambda: len(lines(out)) >= last, timeout=30)
            running.wait_for(lambda: "at the head" in progress.read_text(encoding="utf-8"), timeout=10)
        finally:
            consumer.send_signal(signal.SIGTERM)
            assert consumer.wait(timeout=30) == 0
    said = progress.read_text(encoding="utf-8")
    head_line = next(line for line in said.splitlines() if "at the head" in line)
    done, head = head_line.split(" ")[0].split("/")
    assert int(done) == int(head) >= last
    assert "\r" not in said  # not a terminal: whole lines, not a line rewritten in place
