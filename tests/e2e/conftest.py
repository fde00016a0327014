"""The whole system as a user runs it: nats-server and the three services as processes, over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kpi_core.units import PeerGroup, parse_peer_group, reference_date
from kpi_ingest import admin
from kpi_launcher import embedded
from kpi_launcher.registry import SERVICES

# Units of the bundled peer groups, valid in the periods the tests use (provinces to 2025-06-30,
# HCMC districts to 2025-06-30): a measurement for any other unit is refused.
PROVINCES = ("gia-lai", "binh-dinh", "da-nang")
DISTRICTS = ("quan-1", "quan-3", "thu-duc", "binh-chanh")


def bundled_peer_group(peer_group: str) -> PeerGroup:
    """A unit list bundled with kpi_core (registered by ingest at start, one event per list)."""
    text = resources.files("kpi_core").joinpath("unit_lists", f"{peer_group}.yaml").read_text(encoding="utf-8")
    return parse_peer_group(yaml.safe_load(text))


def unit_ids(peer_group: str, period: int) -> list[str]:
    """The ids of a bundled peer group's units in a period (valid on Dec 31), in the list's order."""
    return [unit.id for unit in bundled_peer_group(peer_group).members(reference_date(period))]


KEY_NAMES = {"admin": "admin", "evaluator": "so-tttt", "approver": "ubnd-approver", "auditor": "auditor"}
KEY_NAMES |= {"any-unit": "any-unit"}


@dataclass
class RunningSystem:
    ingest: httpx.Client
    scoring: httpx.Client
    reporting: httpx.Client
    keys: dict[str, str]
    system: embedded.System
    database_urls: dict[str, str] = field(default_factory=dict)

    def post_measurement(self, key: str, body: dict[str, Any], idempotency_key: str) -> httpx.Response:
        return self.post(key, "/v1/measurements", body, idempotency_key)

    def post(
        self, key: str, path: str, body: dict[str, Any] | None = None, idempotency_key: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self.ingest.post(path, json=body, headers=headers)

    def wait_for(self, check: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError("the system did not reach the expected state")
            time.sleep(0.05)

    def wait_until_keys_known(self, timeout: float = 120.0) -> None:
        """Scoring and reporting learn keys from the stream: wait until they know the ones granted."""
        history = {"catalogue": "vn-dti-province", "version": "1.0", "period": 2024}

        def known() -> bool:
            scoring = self.scoring.get("/v1/events/1/scores")
            reporting = self.reporting.get("/v1/units/gia-lai/history", params=history)
            return scoring.status_code == 200 and reporting.status_code == 200

        self.wait_for(known, timeout)

    def wait_until_projected(self, sequence: int, scope: dict[str, Any]) -> dict[str, Any]:
        """Poll the rankings until reporting has applied `sequence`; returns the rankings."""
        found: dict[str, Any] = {}

        def projected() -> bool:
            nonlocal found
            response = self.reporting.get("/v1/rankings", params=scope)
            found = response.json()
            return response.status_code == 200 and found["as_of_sequence"] >= sequence

        self.wait_for(projected)
        return found


# httpx builds an SSL context (the CA bundle read and parsed) for every transport it makes: tens of
# milliseconds of CPU each. Tests that need a transport of their own (for a client address of their
# own) share this one.
SSL_CONTEXT = httpx.create_ssl_context()


def transport_from(address: str) -> httpx.HTTPTransport:
    """A transport whose requests come from `address` (Linux answers for all of 127.0.0.0/8)."""
    return httpx.HTTPTransport(local_address=address, verify=SSL_CONTEXT)


def start_running_system(
    var_dir: Path, database_urls: dict[str, str], extra_env: dict[str, str] | None = None
) -> RunningSystem:
    """The system with its logs in `var_dir` (`<service>.log`); `extra_env` is given to every service."""
    embedded.migrate_all(database_urls)  # ingest's before its keys are granted; the others' with it
    specs: dict[str, admin.KeySpec] = {unit: (["reporter"], [unit], ["*"], None) for unit in PROVINCES + DISTRICTS}
    specs |= {
        "admin": (["admin", "auditor"], [], ["*"], None),
        "so-tttt": (["evaluator"], [], ["*"], None),
        "ubnd-approver": (["approver"], [], ["*"], None),
        "auditor": (["auditor"], [], ["*"], None),
        "any-unit": (["reporter"], ["*"], ["*"], None),
    }
    granted = admin.grant_many(database_urls["ingest"], specs)
    keys = {name: granted[key_id] for name, key_id in KEY_NAMES.items()} | {
        unit: granted[unit] for unit in PROVINCES + DISTRICTS
    }
    ports = {name: embedded.free_port() for name in SERVICES}
    system = embedded.start_system(
        var_dir,
        ports=ports,
        nats_port=embedded.free_port(),
        database_urls=database_urls,
        log_dir=var_dir,
        extra_env=extra_env,
        migrated=True,
    )
    # reads on scoring and reporting go with the auditor's key unless a test says otherwise (access tests do)
    reader = {"Authorization": f"Bearer {keys['auditor']}"}
    clients = {
        name: httpx.Client(base_url=service.url, timeout=10.0, headers=reader if name != "ingest" else None)
        for name, service in system.services.items()
    }
    running = RunningSystem(clients["ingest"], clients["scoring"], clients["reporting"], keys, system, database_urls)
    try:
        running.wait_until_keys_known()
    except BaseException:  # a fixture that fails here is never torn down: its processes would live on
        system.stop()
        raise
    return running


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    var_dir = tmp_path_factory.mktemp("var")
    urls = {name: f"sqlite+aiosqlite:///{var_dir / f'{name}.db'}" for name in SERVICES}
    running = start_running_system(var_dir, urls)
    yield running
    running.system.stop()
