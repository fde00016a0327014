"""A request id from the HTTP request to the consumers that apply what it stored (issue 15): the
three services as processes, logging JSON lines as `make run` does. A POST with `X-Request-Id: X`
stores an event that records X (its envelope's `requestid`, hashed with it), and scoring's and
reporting's consumers log applying that event under X."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kpi_launcher.registry import SERVICES
from tests.e2e.conftest import RunningSystem, start_running_system

pytestmark = pytest.mark.e2e
REQUEST_ID = "agency-42.trace-7"


@pytest.fixture
def logging_json(tmp_path: Path) -> Iterator[RunningSystem]:
    urls = {name: f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}" for name in SERVICES}
    running = start_running_system(tmp_path, urls, extra_env={"KPI_LOG_FORMAT": "json"})
    yield running
    running.system.stop()


def json_lines(log_file: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def applying(log_file: Path, consumer: str, sequence: int) -> list[dict[str, Any]]:
    """The log lines of the consumer of the event log applying the event `sequence`."""
    return [
        line
        for line in json_lines(log_file)
        if line.get("consumer") == consumer and line["first_sequence"] <= sequence <= line["last_sequence"]
    ]


def test_the_consumers_applying_an_event_log_the_request_id_of_the_request_that_stored_it(
    logging_json: RunningSystem, tmp_path: Path
) -> None:
    running = logging_json
    body = {
        "catalogue_id": "vn-dti-province",
        "catalogue_version": "1.0",
        "period": 2024,
        "unit_id": "gia-lai",
        "indicator": "1.6",
        "inputs": {"a": True},
    }
    headers = {
        "Authorization": f"Bearer {running.keys['gia-lai']}",
        "Idempotency-Key": "traced",
        "X-Request-Id": REQUEST_ID,
    }
    stored = running.ingest.post("/v1/measurements", json=body, headers=headers)
    assert stored.status_code == 201, stored.text
    assert stored.headers["x-request-id"] == REQUEST_ID
    sequence = stored.json()["sequence"]

    for service in ("scoring", "reporting"):
        log_file = tmp_path / f"{service}.log"
        running.wait_for(lambda log_file=log_file, name=service: bool(applying(log_file, name, sequence)), timeout=30.0)
        [line] = applying(log_file, service, sequence)
        assert (line["service"], line["consumer"], line["request_id"]) == (service, service, REQUEST_ID), line
        assert "vn.kpi.measurement.recorded.v1" in line["event_types"]

    # the id is part of the stored event: every reader of the log sees which request stored it
    auditor = {"Authorization": f"Bearer {running.keys['auditor']}"}
    event = running.ingest.get(f"/v1/events/{sequence}", headers=auditor).json()
    assert event["requestid"] == REQUEST_ID
    assert event["idempotencykeysha256"] and "traced" not in json.dumps(event)
    earlier = running.ingest.get("/v1/events/1", headers=auditor).json()  # stored at start, by no request
    assert "requestid" not in earlier
