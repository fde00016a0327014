"""The fault harness (issue 15): the real system under a steady load of retrying clients, one fault at
a seeded random moment, then the checks that matter:

- every acknowledged measurement is stored exactly once (the log holds one event per Idempotency-Key,
  nothing else);
- every projection applied the whole log (scoring and reporting at the head, reporting's history
  holding each measurement once);
- the ranking equals a from-scratch computation over the stored measurements (kpi_core, no service);
- no consumer left behind: the time from the fault's end to both projections at the head (and every
  consumer's `kpi_consumer_lag_events` at 0) is the recovery time;
- no event given up on: every consumer's `kpi_consumer_dead_letters` is 0 (a transient failure
  must be retried, never skipped).

The system runs on SQLite and one nats-server, except for three faults (tests/e2e/fault_systems.py):
"PostgreSQL stopped 3 s" runs every service on the embedded PostgreSQL server, stopped (fast
shutdown: every connection dropped) and started again on the same data; "1 of 3 NATS nodes killed"
runs the services on a three-node JetStream cluster (the launcher given the three URLs, starting no
nats-server of its own; the streams at three replicas) and kills -9 the node leading the event
stream, which stays down until the round's checks are done (then it comes back and catches up
before the next round); "1 event held back 12 s" gives ingest its path to nats-server through a
link the harness cuts (`hold_back`).

`make test` runs ten seeds of each kill -9 (tests/e2e/test_faults_kill_*.py, a file each so that
they run side by side) and one of each other fault (tests/e2e/test_faults.py); `make faults` runs
ten of each and prints the table the README shows: `python -m tests.e2e.faults --seeds 10`.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.inputs import RecordedInputs
from kpi_core.scoring import display_points, score_period
from kpi_launcher import embedded
from tests.conftest import fixture_catalogue
from tests.e2e.conftest import RunningSystem, unit_ids
from tests.e2e.fault_systems import (
    Link,
    NatsCluster,
    Postgres,
    history_rows,
    outbox_beyond_stream,
    publish_copies,
    sqlite_urls,
    start_system,
)

CATALOGUE_NAME = "mini-relative@1.0"  # peer-relative and year-over-year rules: the hardest to keep right
SCOPE: dict[str, str | int] = {"catalogue": "mini-relative", "version": "1.0", "period": 2024}
KILLS = ("kill -9 ingest", "kill -9 scoring", "kill -9 reporting")
NATS_STOPPED, POSTGRES_RESTART, NATS_NODE_LOST = (
    "NATS stopped 3 s",
    "PostgreSQL stopped 3 s",
    "1 of 3 NATS nodes killed",
)
HELD_BACK = "1 event held back 12 s"
FAULTS = (*KILLS, NATS_STOPPED, POSTGRES_RESTART, NATS_NODE_LOST, HELD_BACK)
CLIENTS = 4
HOLD_SECONDS = 12.0  # past the old redelivery window (20 deliveries, 0.5 s apart), which once stalled a projection
EARLY = 4  # events that reach the stream before the one held back
KILL_SEEDS, KILL_POSTS = 10, 40  # each kill -9 in `make test`: ten rounds, 40 acknowledged measurements each


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
    dead_letters: int = 0
    mismatched: list[str] = field(default_factory=list)
    recovery_seconds: float = 0.0
    not_in_effect: str = ""  # why the fault did not happen as meant (then the round proves nothing)

    @property
    def ok(self) -> bool:
        failed = self.lost or self.duplicated or self.stalled or self.dead_letters or self.mismatched
        return not (failed or self.not_in_effect)


@dataclass
class Environment:
    """The running system of one fault and what it runs on."""

    running: RunningSystem
    folder: Path
    postgres: Postgres | None = None  # the database server, for POSTGRES_RESTART (else SQLite)
    cluster: NatsCluster | None = None  # three NATS nodes, for NATS_NODE_LOST (else one nats-server)
    lost_node: int | None = None  # the cluster node killed in this round
    link: Link | None = None  # ingest's path to nats-server, for HELD_BACK (else direct)

    @classmethod
    def start(cls, folder: Path, fault: str) -> Environment:
        folder.mkdir(parents=True, exist_ok=True)
        postgres = Postgres.start(folder / "pg") if fault == POSTGRES_RESTART else None
        cluster = NatsCluster.start(folder) if fault == NATS_NODE_LOST else None
        link: Link | None = None
        try:
            urls = postgres.database_urls() if postgres else sqlite_urls(folder)
            if cluster:
                running = start_system(folder, urls, nats_url=cluster.url, extra_env=cluster.service_env())
            elif fault == HELD_BACK:
                nats_port = embedded.free_port()
                link = Link(nats_port)
                running = start_system(folder, urls, nats_port=nats_port, extra_env={"KPI_INGEST_NATS_URL": link.url})
            else:
                running = start_system(folder, urls)
        except BaseException:
            cls._remove(postgres, cluster, link)
            raise
        return cls(running, folder, postgres, cluster, link=link)

    def stop(self) -> None:
        self.running.system.stop()
        self._remove(self.postgres, self.cluster, self.link)

    @staticmethod
    def _remove(postgres: Postgres | None, cluster: NatsCluster | None, link: Link | None) -> None:
        if cluster:
            cluster.stop()
        if postgres:
            postgres.remove()
        if link:
            link.close()


def measurement(rng: random.Random, units: list[str]) -> dict[str, Any]:
    period, indicator = rng.choice((2023, 2024, 2024, 2024)), rng.choice(("5.1", "5.2", "6.13"))
    by_indicator: dict[str, dict[str, Any]] = {
        "5.1": {"a": rng.randint(0, 20)},
        "5.2": {"a": rng.random() < 0.5},
        "6.13": {"a": f"{rng.randint(1, 9) / 10}", **({"b": "0.5"} if period == 2023 else {})},
    }
    inputs = by_indicator[indicator]
    return {
        "catalogue_id": "mini-relative",
        "catalogue_version": "1.0",
        "period": period,
        "unit_id": rng.choice(units),
        "indicator": indicator,
        "inputs": inputs,
    }


class Load:
    """Clients that post `requests` measurements between them (or fewer, if told to stop), each
    retrying a request (same Idempotency-Key) until it is answered 201 or 200: what an agency system
    does when a connection drops."""

    def __init__(self, running: RunningSystem, seed: int, prefix: str, requests: int) -> None:
        self.running, self.prefix, self.requests = running, prefix, requests
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

    def wait_posted(self, count: int) -> None:
        """Until `count` requests were acknowledged, or every client has ended (a refused request
        ends its client: the round then has fewer than it asked for, which the tests check)."""
        while self.posted < count and any(thread.is_alive() for thread in self._threads):
            time.sleep(0.02)

    def _client(self, number: int) -> None:
        headers = {"Authorization": f"Bearer {self.running.keys['any-unit']}"}
        with httpx.Client(base_url=self.running.ingest.base_url, timeout=5.0, headers=headers) as client:
            while not self.stop.is_set():
                with self._lock:
                    if self._count == self.requests:
                        return
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


def consumer_gauges(running: RunningSystem, name: str, stream: str | None = None) -> list[float]:
    """One gauge of every consumer of scoring and reporting (of `stream`, or of any), from their /metrics."""
    values = []
    for client in (running.scoring, running.reporting):
        for family in text_string_to_metric_families(client.get("/metrics").text):
            values += [
                sample.value
                for sample in family.samples
                if sample.name == name and stream in (None, sample.labels.get("stream"))
            ]
    return values


def caught_up(running: RunningSystem, sequence: int) -> bool:
    """Reporting applied the log up to `sequence` and scoring's scores answer it (a ranking's
    `as_of_sequence` is the lower of the two), and no consumer of either service lags its stream."""
    try:
        ranking = running.reporting.get("/v1/rankings", params=SCOPE)
        if ranking.status_code != 200 or ranking.json()["as_of_sequence"] < sequence:
            return False
        consumers = consumer_gauges(running, "kpi_consumer_position")
        lags = consumer_gauges(running, "kpi_consumer_lag_events")  # absent while the stream does not answer
    except httpx.TransportError:
        return False
    return len(lags) == len(consumers) > 0 and not any(lags)


def hold_back(environment: Environment) -> str:
    """One event reaches the stream 12 s after the four behind it, then ingest's relay carries on.

    Ingest's relay never puts the stream out of order (it publishes each event only right after the
    one before it), so the harness plays a publisher that does, as ingest's relay once did when one
    publish failed and the next ones went through: it cuts ingest's link to nats-server (ingest keeps
    accepting writes, its outbox buffers them), takes the outbox rows the stream does not hold yet
    (F, F+1, ...) as the relay reads them, publishes F+1..F+4 (their subjects, bytes and
    Nats-Msg-Ids), waits past the old redelivery window, publishes F and F+5, and gives ingest its
    link back: the stream ends with F+5, ingest's relay finds it holds the outbox up to there and
    publishes the rest after it. Returns why the fault did not take effect, or ''."""
    running, link = environment.running, environment.link
    assert link is not None
    link.cut()
    time.sleep(0.2)  # what the relay sent before the cut has reached the server
    nats_url, ingest_url = running.system.nats_url, running.database_urls["ingest"]
    deadline = time.monotonic() + 30
    while len(rows := outbox_beyond_stream(nats_url, ingest_url)) < EARLY + 2:
        if time.monotonic() > deadline:
            link.restore()
            return f"only {len(rows)} events reached ingest's outbox in 30 s"
        time.sleep(0.05)
    held, early, last = rows[0], rows[1 : EARLY + 1], rows[EARLY + 1]
    publish_copies(nats_url, early)
    time.sleep(HOLD_SECONDS)
    positions = consumer_gauges(running, "kpi_consumer_position", "KPI_EVENTS")
    publish_copies(nats_url, [held, last])
    link.restore()
    if not positions or any(position != held.sequence - 1 for position in positions):
        return f"the consumers of the event stream were at {positions}, not waiting at {held.sequence - 1}"
    return ""


def inject(environment: Environment, fault: str, rng: random.Random) -> str:
    """The fault, then the system brought back as an operator (or the launcher) would. Returns why
    the fault did not take effect as meant, or ''."""
    running, folder = environment.running, environment.folder
    time.sleep(rng.uniform(0.0, 0.3))
    if fault.startswith("kill -9 "):
        name = fault.removeprefix("kill -9 ")
        service = running.system.services[name]
        service.process.kill()
        service.process.wait()
        time.sleep(rng.uniform(0.0, 0.5))  # down for a moment (the launcher waits 1 s): when it dies is what varies
        running.system.services[name] = embedded.restart(service)
        embedded.wait_ready(running.system.services[name])
    elif fault == HELD_BACK and environment.link:
        return hold_back(environment)
    elif fault == NATS_STOPPED:
        port = int(running.system.nats_url.rsplit(":", 1)[1])
        embedded.stop(running.system.nats)
        time.sleep(3.0)
        running.system.nats = embedded.start_nats(port, folder / "nats")
    elif fault == POSTGRES_RESTART and environment.postgres:
        environment.postgres.stop()
        time.sleep(3.0)
        environment.postgres.start_again()
    elif fault == NATS_NODE_LOST and environment.cluster:
        environment.lost_node = environment.cluster.leader()
        environment.cluster.kill(environment.lost_node)  # no restart: the round goes on with two nodes
    else:
        raise ValueError(fault)
    return ""


def restore(environment: Environment) -> None:
    """After a round's checks: the lost node back, caught up, before the next round loses one."""
    if environment.cluster and environment.lost_node is not None:
        environment.cluster.revive(environment.lost_node)
        environment.lost_node = None


def one_round(
    environment: Environment, fault: str, seed: int, scored: Catalogue, posts: int, earlier: dict[str, int]
) -> Round:
    """One seeded round on a running system; `earlier` holds what earlier rounds had acknowledged."""
    rng, running = random.Random(seed), environment.running
    dead_before = sum(consumer_gauges(running, "kpi_consumer_dead_letters"))
    load = Load(running, seed, f"{re.sub('[^a-z0-9]+', '-', fault.lower())}-{seed}", posts)
    load.start()
    fault_after = rng.randint(posts // 4, posts // 2)
    load.wait_posted(fault_after)
    not_in_effect = inject(environment, fault, rng)
    load.wait_posted(posts)
    load.finish()
    recovered_from = time.monotonic()
    result = Round(fault, seed, acknowledged=len(load.acknowledged), not_in_effect=not_in_effect)
    earlier |= load.acknowledged
    last = max(earlier.values())
    deadline = recovered_from + 60
    while not caught_up(running, last):
        if time.monotonic() > deadline:
            result.stalled = True
            break
        time.sleep(0.05)
    result.recovery_seconds = time.monotonic() - recovered_from
    result.dead_letters = int(sum(consumer_gauges(running, "kpi_consumer_dead_letters")) - dead_before)
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
    rows, distinct = history_rows(running.database_urls["reporting"])
    if rows != distinct or rows != len(events):
        result.mismatched.append(f"reporting applied {rows} rows for {len(events)} measurements")
    return result


def run_faults(var_dir: Path, seeds: int, posts: int, faults: tuple[str, ...] = FAULTS) -> list[Round]:
    scored, rounds = catalogue(), []
    for index, fault in enumerate(faults):
        environment = Environment.start(var_dir / f"fault-{index}", fault)
        running = environment.running
        acknowledged: dict[str, int] = {}
        try:
            admin = {"Authorization": f"Bearer {running.keys['admin']}"}
            registered = running.ingest.post("/v1/catalogues", json=fixture_catalogue(CATALOGUE_NAME), headers=admin)
            assert registered.status_code in (200, 201, 409), registered.text
            for seed in range(1, seeds + 1):
                rounds.append(one_round(environment, fault, seed, scored, posts, acknowledged))
                if seed < seeds:  # the next round starts from a whole system
                    restore(environment)
        finally:
            environment.stop()
    return rounds


def assert_nothing_lost_doubled_or_stuck(folder: Path, fault: str, seeds: int, posts: int) -> None:
    """What the tests check of a fault's rounds (each round's checks, and that the round happened)."""
    rounds = run_faults(folder, seeds=seeds, posts=posts, faults=(fault,))
    print(table(rounds))
    assert [round.seed for round in rounds] == list(range(1, seeds + 1))
    for round in rounds:
        assert round.acknowledged >= posts
        assert round.ok, round  # nothing lost, doubled, stalled, dead-lettered; the ranking as from scratch


def table(rounds: list[Round]) -> str:
    lines = [
        "| fault | seeds | acknowledged | lost | duplicated | stalled | dead letters | ranking ≠ from scratch "
        "| recovery p50 / max |"
    ]
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for fault in dict.fromkeys(round.fault for round in rounds):
        mine = [round for round in rounds if round.fault == fault]
        recovery = [round.recovery_seconds for round in mine]
        lines.append(
            f"| {fault} | {len(mine)} | {sum(r.acknowledged for r in mine)} | {sum(r.lost for r in mine)} | "
            f"{sum(r.duplicated for r in mine)} | {sum(r.stalled for r in mine)} | "
            f"{sum(r.dead_letters for r in mine)} | {sum(bool(r.mismatched) for r in mine)} | "
            f"{statistics.median(recovery):.1f} s / {max(recovery):.1f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="kill -9 and outages under load; what was lost, doubled, stuck")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--posts", type=int, default=200, help="acknowledged measurements per round")
    parser.add_argument("--fault", action="append", choices=FAULTS, help="only this fault (repeatable); default all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rounds = run_faults(Path(folder), args.seeds, args.posts, tuple(args.fault or FAULTS))
    print(table(rounds))
    failed = [round for round in rounds if not round.ok]
    for round in failed:
        print(f"FAILED {round.fault} seed {round.seed}: {round}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
