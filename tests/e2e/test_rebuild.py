"""Rebuild: replaying the stream into a fresh database and swapping it in gives identical results; a
rebuild that cannot finish leaves the service's database exactly as it was."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kpi_launcher import embedded
from kpi_launcher.registry import SERVICES
from tests.conftest import fixture_catalogue, postgres_database
from tests.e2e.conftest import RunningSystem, start_running_system

pytestmark = pytest.mark.e2e
SCOPE = {"catalogue": "mini-relative", "version": "1.0", "period": 2024}


@pytest.fixture
def system(tmp_path: Path) -> Iterator[tuple[RunningSystem, dict[str, str]]]:
    urls = {name: f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}" for name in SERVICES}
    running = start_running_system(tmp_path, urls)
    yield running, urls
    running.system.stop()


def tables(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    connection = sqlite3.connect(database_url.split("///", 1)[1])
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'alembic_version'"
        )
    ]
    dump = {name: sorted(connection.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr) for name in names}
    connection.close()
    return dump


def measure(system: RunningSystem, index: int, period: int, unit: str, indicator: str, inputs: dict[str, Any]) -> int:
    body = {
        "catalogue_id": "mini-relative",
        "catalogue_version": "1.0",
        "period": period,
        "unit_id": unit,
        "indicator": indicator,
        "inputs": inputs,
    }
    response = system.post_measurement(unit, body, f"rebuild-{index}")
    assert response.status_code == 201, response.text
    return int(response.json()["sequence"])


@pytest.mark.postgres  # the same stream rebuilt into PostgreSQL too
def test_rebuilt_projections_equal_the_live_ones(
    system: tuple[RunningSystem, dict[str, str]], request: pytest.FixtureRequest
) -> None:
    running, urls = system
    admin = {"Authorization": f"Bearer {running.keys['admin']}"}
    assert (
        running.ingest.post("/v1/catalogues", json=fixture_catalogue("mini-relative@1.0"), headers=admin).status_code
        == 201
    )
    # mini-relative ranks the HCMC districts (peer group hcmc-districts): its units report
    history = [
        (2023, "quan-1", "6.13", {"a": "0.5", "b": "0.4"}),
        (2024, "quan-1", "5.1", {"a": 4}),
        (2024, "quan-3", "5.1", {"a": 9}),
        (2024, "thu-duc", "5.1", {"a": 6}),
        (2024, "quan-1", "6.13", {"a": "0.6"}),
        (2024, "quan-3", "5.1", {"a": 3}),  # a correction that moves every unit's Min-Max points
        (2024, "thu-duc", "5.2", {"a": True}),
        (2023, "quan-1", "6.13", {"a": "0.7", "b": "0.4"}),  # last year corrected: this year's score moves
    ]
    last = 0
    for index, (period, unit, indicator, inputs) in enumerate(history):
        last = measure(running, index, period, unit, indicator, inputs)
    running.wait_until_projected(last, SCOPE)
    running.wait_for(
        lambda: running.scoring.get("/v1/units/quan-1/scores/6.13", params=SCOPE).json().get("as_of_sequence") == last
    )
    rankings = running.reporting.get("/v1/rankings", params=SCOPE).json()
    for name in ("scoring", "reporting"):
        embedded.stop(running.system.services[name].process)
    live = {name: tables(urls[name]) for name in ("scoring", "reporting")}
    assert live["scoring"]["scores"] and live["reporting"]["measurement_history"]
    for name in ("scoring", "reporting"):
        command = [
            sys.executable,
            "-m",
            "kpi_launcher.cli",
            "rebuild",
            name,
            "--nats",
            running.system.nats_url,
            "--database-url",
            urls[name],
        ]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        assert completed.returncode == 0, completed.stderr
        assert f"up to sequence {last}" in completed.stdout
    assert {name: tables(urls[name]) for name in ("scoring", "reporting")} == live
    restarted = embedded.start_service(
        "reporting",
        running.system.services["reporting"].port,
        {
            "KPI_REPORTING_DATABASE_URL": urls["reporting"],
            "KPI_REPORTING_NATS_URL": running.system.nats_url,
        },
    )
    running.system.services["reporting"] = restarted
    embedded.wait_ready(restarted)
    assert running.reporting.get("/v1/rankings", params=SCOPE).json() == rankings
    # The same stream rebuilt into PostgreSQL answers byte for byte what SQLite answers, now and as_of.
    base = request.getfixturevalue("postgres_base_url")
    answers: dict[str, list[bytes]] = {}
    for kind in ("sqlite", "postgresql"):
        database = urls if kind == "sqlite" else {name: postgres_database(base) for name in ("scoring", "reporting")}
        if kind == "postgresql":
            for name in ("scoring", "reporting"):
                rebuild = [sys.executable, "-m", "kpi_launcher.cli", "rebuild", name, "--nats", running.system.nats_url]
                completed = subprocess.run(
                    [*rebuild, "--database-url", database[name]], capture_output=True, text=True, check=False
                )
                assert completed.returncode == 0, completed.stderr
        readers = {}
        for name in ("scoring", "reporting"):
            prefix = f"KPI_{name.upper()}_"
            env = {
                f"{prefix}DATABASE_URL": database[name],
                f"{prefix}NATS_URL": running.system.nats_url,
                f"{prefix}RUN_CONSUMER": "false",
            }
            readers[name] = embedded.start_service(name, embedded.free_port(), env)
        try:
            for reader in readers.values():
                embedded.wait_ready(reader)
            answers[kind] = [
                httpx.get(readers[service].url + path, params={**SCOPE, **params}, headers=admin).content
                for service, path, params in [
                    ("reporting", "/v1/rankings", {}),
                    ("reporting", "/v1/rankings", {"as_of": last - 3}),
                    ("reporting", "/v1/units/quan-1/scorecard", {}),
                    ("reporting", "/v1/units/quan-1/scorecard", {"as_of": last - 3}),
                    ("reporting", "/v1/units/quan-1/history", {}),
                    ("reporting", "/v1/diff", {"from": last - 3}),
                    ("scoring", "/v1/units/quan-1/scores", {}),
                    ("scoring", "/v1/units/quan-1/scores", {"as_of": last - 3}),
                ]
            ]
        finally:
            for reader in readers.values():
                embedded.stop(reader.process)
    assert all(
        b'"rankings"' in answer or b'"code"' in answer or b'"sequence"' in answer for answer in answers["sqlite"]
    )
    assert answers["sqlite"] == answers["postgresql"]


def rebuild(name: str, nats_url: str, database_url: str, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kpi_launcher.cli", "rebuild", name, "--nats", nats_url]
    return subprocess.run([*command, "--database-url", database_url, *options], capture_output=True, text=True)


def test_a_rebuild_that_cannot_finish_changes_nothing(system: tuple[RunningSystem, dict[str, str]]) -> None:
    running, urls = system
    admin = {"Authorization": f"Bearer {running.keys['admin']}"}
    posted = running.ingest.post("/v1/catalogues", json=fixture_catalogue("mini-relative@1.0"), headers=admin)
    assert posted.status_code == 201, posted.text
    last = 0
    for index, unit in enumerate(("quan-1", "quan-3", "thu-duc")):
        last = measure(running, index, 2024, unit, "5.1", {"a": index + 2})
    running.wait_until_projected(last, SCOPE)
    running.wait_for(
        lambda: running.scoring.get("/v1/units/thu-duc/scores/5.1", params=SCOPE).json().get("as_of_sequence") == last
    )
    nats_url, database_url = running.system.nats_url, urls["scoring"]
    leftover = Path(database_url.split("///", 1)[1] + ".rebuilding")

    in_use = rebuild("scoring", nats_url, database_url)  # the service still runs
    assert in_use.returncode == 1, in_use.stdout
    assert "stop the service" in in_use.stderr and "left as it was" in in_use.stderr
    assert not leftover.exists()

    embedded.stop(running.system.services["scoring"].process)
    before = tables(database_url)
    assert before["scores"] and before["score_log"]
    timed_out = rebuild("scoring", nats_url, database_url, "--timeout", "0")
    assert timed_out.returncode == 1 and "did not catch up" in timed_out.stderr
    no_nats = rebuild("scoring", f"nats://127.0.0.1:{embedded.free_port()}", database_url)
    assert no_nats.returncode == 2 and "nothing was changed" in no_nats.stderr
    assert "Traceback" not in in_use.stderr + timed_out.stderr + no_nats.stderr
    assert tables(database_url) == before
    assert not leftover.exists()

    done = rebuild("scoring", nats_url, database_url)
    assert done.returncode == 0, done.stderr
    assert f"up to sequence {last}" in done.stdout
    assert tables(database_url) == before
