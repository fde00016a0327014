"""The fault harness (issue 15): the real system under a steady load of retrying clients, one fault at
a seeded random moment, then the checks that matter:

- every acknowledged measurement is stored exactly once (the log holds one event per Idempotency-Key,
  nothing else);
- every projection applied the whole log (scoring and reporting at the head, reporting's history
  holding each measurement once);
- the ranking equals a from-scratch computation over the stored measurements (kpi_core, no service);
- no consumer left behind: the time from the fault's end to both projections at the head is the
  recovery time.

`make test` runs two seeds of each fault (tests/e2e/test_faults.py); `make faults` runs ten and
prints the table the README shows: `python -m tests.e2e.faults --seeds 10`.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.inputs import RecordedInputs
from kpi_core.scoring import display_points, score_period
from kpi_launcher import embedded
from kpi_launcher.registry import SERVICES
from tests.conftest import fixture_catalogue
from tests.e2e.conftest import RunningSystem, start_running_system, unit_ids

CATALOGUE_NAME = "mini-relative@1.0"  # peer-relative and year-over-year rules: the hardest to keep right
SCOPE = {"catalogue": "mini-relative", "version": "1.0", "period": 2024}
FAULTS = ("kill -9 ingest", "kill -9 scoring", "kill -9 reporting", "NATS stopped 3 s")
CLIENTS = 4


def catalogue() -> Catalogue:
    return parse_catalogue(fixture_catalogue(CATALOGUE_NAME))


@dataclass
class Round:
    fault: str
    seed: int
    acknowledged: int = 0
    lost: int = 0
    duplicated: int = 0
    stalled: bool = False
    mismatched: list[str] = field(default_factory=list)
    recovery_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.stalled or self.mismatched)


def measurement(rng: random.Random, units: list[str]) -> dict[str, Any]:
    period, indicator = rng.choice((2023, 2024, 2024, 2024)), rng.choice(("5.1", "5.2", "6.13"))
    inputs: dict[str, Any] = {
        "5.1": {"a": rng.randint(0, 20)},
        "5.2": {"a": rng.random() < 0.5},
        "6.13": {"a": f"{rng.randint(1, 9) / 10}", **({"b": "0.5"} if period == 2023 else {})},
    }[indicator]
    return {
        "catalogue_id": "mini-relative",
        "catalogue_version": "1.0",
        "period": period,
        "unit_id": rng.choice(units),
        "indicator": indicator,
        "inputs": inputs,
    }


class Load:
    """Clients that post until told to stop, each retrying a request (same Idempotency-Key) until it is
    answered 201 or 200: what an agency system does when a connection drops."""

    def __init__(self, running: RunningSystem, seed: int, prefix: str) -> None:
        self.running, self.prefix = running, prefix
        self.rng = random.Random(seed)
        self.units = unit_ids("hcmc-districts", 2024)
        self.acknowledged: dict[str, int] = {}  # Idempotency-Key -> the sequence it was stored at
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._count = 0
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(CLIENTS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    @property
    def posted(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def _client(self, number: int) -> None:
        headers = {"Authorization": f"Bearer {self.running.keys['any-unit']}"}
        with httpx.Client(base_url=self.running.ingest.base_url, timeout=5.0, headers=headers) as client:
            while not self.stop.is_set():
                with self._lock:
                    self._count += 1
                    key, body = f"{self.prefix}-{number}-{self._count}", measurement(self.rng, self.units)
                while True:  # the same request until it is answered
                    try:
                        response = client.post("/v1/measurements", json=body, headers={"Idempotency-Key": key})
                    except httpx.TransportError:
                        time.sleep(0.1)
                        continue
                    if response.status_code in (200, 201):
                        with self._lock:
                            self.acknowledged[key] = int(response.json()["sequence"])
                        break
                    if response.status_code >= 500 or response.status_code == 503:
                        time.sleep(0.1)
                        continue
                    raise AssertionError(f"{response.status_code} {response.text}")
                time.sleep(0.01)


def stored_measurements(running: RunningSystem) -> list[dict[str, Any]]:
    """Every measurement event in the log, read back over the API (auditor)."""
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        page = running.ingest.get(
            "/v1/events",
            params={"after": after, "limit": 1000, "type": "vn.kpi.measurement.recorded.v1"},
            headers={"Authorization": f"Bearer {running.keys['auditor']}"},
        ).json()
        found += page["events"]
        if len(page["events"]) < 1000:
            return found
        after = page["next_after"]


def from_scratch(events: list[dict[str, Any]], scored: Catalogue) -> dict[str, str]:
    """Each district's total for 2024, computed by the core from the stored measurements alone."""
    inputs: dict[int, dict[str, dict[str, RecordedInputs]]] = {2023: {}, 2024: {}}
    for envelope in sorted(events, key=lambda event: event["sequence"]):
        data = envelope["data"]
        typed = {name: value if isinstance(value, bool) else Decimal(value) for name, value in data["inputs"].items()}
        recorded = RecordedInputs(data["indicator"], typed, envelope["id"], envelope["sequence"])
        inputs[data["period"]].setdefault(data["unit_id"], {})[data["indicator"]] = recorded
    members = unit_ids("hcmc-districts", 2024)
    scores = score_period(scored, inputs[2024], inputs[2023], units=members)
    return {unit: str(display_points(score.total)) for unit, score in scores.items()}


def caught_up(running: RunningSystem, sequence: int) -> bool:
    """Reporting applied the log up to `sequence` and scoring's scores answer it (a ranking's
    `as_of_sequence` is the lower of the two)."""
    try:
        ranking = running.reporting.get("/v1/rankings", params=SCOPE)
    except httpx.TransportError:
        return False
    return ranking.status_code == 200 and ranking.json()["as_of_sequence"] >= sequence


def inject(running: RunningSystem, folder: Path, fault: str, rng: random.Random) -> None:
    """The fault, then the system brought back as an operator (or the launcher) would."""
    time.sleep(rng.uniform(0.0, 0.3))
    if fault.startswith("kill -9 "):
        name = fault.removeprefix("kill -9 ")
        service = running.system.services[name]
        service.process.kill()
        service.process.wait()
        time.sleep(rng.uniform(0.2, 1.0))
        running.system.services[name] = embedded.restart(service)
        embedded.wait_ready(running.system.services[name])
    elif fault.startswith("NATS stopped"):
        port = int(running.system.nats_url.rsplit(":", 1)[1])
        embedded.stop(running.system.nats)
        time.sleep(3.0)
        running.system.nats = embedded.start_nats(port, folder / "nats")
    else:
        raise ValueError(fault)


def one_round(
    running: RunningSystem, folder: Path, fault: str, seed: int, scored: Catalogue, posts: int, earlier: dict[str, int]
) -> Round:
    """One seeded round on a running system; `earlier` holds what earlier rounds had acknowledged."""
    rng = random.Random(seed)
    load = Load(running, seed, f"{fault.replace(' ', '_')}-{seed}")
    load.start()
    fault_after = rng.randint(posts // 4, posts // 2)
    while load.posted < fault_after:
        time.sleep(0.02)
    inject(running, folder, fault, rng)
    while load.posted < posts:
        time.sleep(0.02)
    load.finish()
    recovered_from = time.monotonic()
    result = Round(fault, seed, acknowledged=len(load.acknowledged))
    earlier |= load.acknowledged
    last = max(earlier.values())
    deadline = recovered_from + 60
    while not caught_up(running, last):
        if time.monotonic() > deadline:
            result.stalled = True
            break
        time.sleep(0.1)
    result.recovery_seconds = time.monotonic() - recovered_from
    events = stored_measurements(running)
    stored = [event["sequence"] for event in events]
    acknowledged = list(earlier.values())
    result.lost = len(set(acknowledged) - set(stored))
    # two keys answered with one event, or a retried request stored a second time
    result.duplicated = (len(acknowledged) - len(set(acknowledged))) + max(0, len(stored) - len(set(acknowledged)))
    ranking = running.reporting.get("/v1/rankings", params=SCOPE).json()
    shown = {entry["unit_id"]: str(entry["total"]) for entry in ranking["rankings"]}
    expected = from_scratch(events, scored)
    result.mismatched = [unit for unit in expected if shown.get(unit) != expected[unit]]
    with sqlite3.connect(folder / "reporting.db") as connection:
        rows, distinct = connection.execute(
            "SELECT count(*), count(DISTINCT sequence) FROM measurement_history"
        ).fetchone()
    if rows != distinct or rows != len(events):
        result.mismatched.append(f"reporting applied {rows} rows for {len(events)} measurements")
    return result


def run_faults(var_dir: Path, seeds: int, posts: int, faults: tuple[str, ...] = FAULTS) -> list[Round]:
    scored, rounds = catalogue(), []
    for index, fault in enumerate(faults):
        folder = var_dir / f"fault-{index}"
        urls = {name: f"sqlite+aiosqlite:///{folder / f'{name}.db'}" for name in SERVICES}
        running = start_running_system(folder, urls)
        acknowledged: dict[str, int] = {}
        try:
            admin = {"Authorization": f"Bearer {running.keys['admin']}"}
            registered = running.ingest.post("/v1/catalogues", json=fixture_catalogue(CATALOGUE_NAME), headers=admin)
            assert registered.status_code in (200, 201, 409), registered.text
            for seed in range(1, seeds + 1):
                rounds.append(one_round(running, folder, fault, seed, scored, posts, acknowledged))
        finally:
            running.system.stop()
    return rounds


def table(rounds: list[Round]) -> str:
    lines = [
        "| fault | seeds | acknowledged | lost | duplicated | stalled | ranking ≠ from scratch | recovery p50 / max |"
    ]
    lines.append("|---|---|---|---|---|---|---|---|")
    for fault in dict.fromkeys(round.fault for round in rounds):
        mine = [round for round in rounds if round.fault == fault]
        recovery = [round.recovery_seconds for round in mine]
        lines.append(
            f"| {fault} | {len(mine)} | {sum(r.acknowledged for r in mine)} | {sum(r.lost for r in mine)} | "
            f"{sum(r.duplicated for r in mine)} | {sum(r.stalled for r in mine)} | "
            f"{sum(bool(r.mismatched) for r in mine)} | {statistics.median(recovery):.1f} s / {max(recovery):.1f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="kill -9 and NATS outages under load; what was lost, doubled, stuck")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--posts", type=int, default=200, help="acknowledged measurements per round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rounds = run_faults(Path(folder), args.seeds, args.posts)
    print(table(rounds))
    failed = [round for round in rounds if not round.ok]
    for round in failed:
        print(f"FAILED {round.fault} seed {round.seed}: {round}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
