"""`make bench-full-year`: one year of the provincial DTI (vn-dti-province 1.0) for the 63 provinces,
every scored indicator, posted over HTTP; then how long the projections take to catch up, a
ranking query over the full catalogue, and a rebuild of each projection from the stream.

These are the figures issue 12 measures (5,398 measurements; scoring applied about 12 events/s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
from tests.bench import system as bench_system
from tests.e2e.conftest import unit_ids
from tests.reproduce import Unreachable, inputs_for

from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_ingest.adapters.catalogue_files import bundled_catalogue_documents
from kpi_launcher import embedded

CATALOGUE = ("vn-dti-province", "1.0")
PERIOD = 2024
PROVINCES = unit_ids("provinces", PERIOD)


def catalogue() -> Catalogue:
    document = next(d for d in bundled_catalogue_documents() if (d["id"], d["version"]) == CATALOGUE)
    return parse_catalogue(document)


def year_of_measurements(scored: Catalogue) -> list[dict[str, Any]]:
    """Every scored leaf for every province, with points spread over each rule's scale by unit."""
    bodies = []
    for unit_index, unit in enumerate(PROVINCES):
        for node in scored.leaves():
            if not node.scored or node.max_points is None:
                continue
            share = Fraction((unit_index * 7 + len(node.code)) % 5, 4)  # 0, 1/4, ... 1 of the maximum
            try:
                submission = inputs_for(node, Fraction(node.max_points) * share)
            except Unreachable:
                try:
                    submission = inputs_for(node, Fraction(node.max_points))
                except Unreachable:
                    continue
            bodies.append(
                {
                    "catalogue_id": CATALOGUE[0],
                    "catalogue_version": CATALOGUE[1],
                    "period": PERIOD,
                    "unit_id": unit,
                    "indicator": node.code,
                    "inputs": submission.inputs,
                }
            )
    return bodies


async def post_all(url: str, key: str, bodies: list[dict[str, Any]], concurrency: int) -> tuple[float, int, int]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(bodies)):
        queue.put_nowait(index)
    last, refused = 0, 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal last, refused
        while not queue.empty():
            index = queue.get_nowait()
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"year-{index}"}
            response = await client.post("/v1/measurements", json=bodies[index], headers=headers)
            if response.status_code in (200, 201):
                last = max(last, response.json()["sequence"])
            else:
                refused += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return time.perf_counter() - started, last, refused


def wait_position(url: str, path: str, params: dict[str, Any], headers: dict[str, str], sequence: int) -> float:
    """Seconds until a projection's answer carries `sequence` (polled every 50 ms)."""
    started = time.perf_counter()
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:  # one client: each builds an SSL context
        while True:
            found = client.get(path, params=params).json()
            if isinstance(found, dict) and found.get("as_of_sequence", 0) >= sequence:
                return time.perf_counter() - started
            time.sleep(0.05)


def scoring_caught_up(url: str, headers: dict[str, str], sequence: int) -> float:
    started = time.perf_counter()
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        while True:
            changed = client.get(f"/v1/events/{sequence}/scores")
            if changed.status_code == 200 and changed.json():
                return time.perf_counter() - started
            time.sleep(0.05)


def ranking_latencies(
    url: str, query: dict[str, Any], headers: dict[str, str], moments: list[int | None]
) -> list[float]:
    """Seconds per ranking read; each `as_of` moment differs, so none is answered from the memo."""
    latencies = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for moment in moments:
            params = {**query, "stage": "self_assessment", **({"as_of": moment} if moment is not None else {})}
            started = time.perf_counter()
            assert client.get("/v1/rankings", params=params).status_code == 200
            latencies.append(time.perf_counter() - started)
    return latencies


def percentiles(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"


def rebuild(service: str, database_url: str, nats_url: str) -> tuple[float, int, float, float]:
    """(seconds of the replay as `kpi-ledger rebuild` reports it, the position reached, seconds of the
    whole command: the interpreter's start and the migrations check included, and the CPU seconds
    the whole command used, its child processes included)."""
    started, cpu_before = time.perf_counter(), _children_cpu()
    command = [sys.executable, "-m", "kpi_launcher.cli", "rebuild", service, "--nats", nats_url]
    done = subprocess.run([*command, "--database-url", database_url], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{service} rebuild failed ({done.returncode}): {done.stdout[-3000:]} {done.stderr[-6000:]}")
    found = re.search(r"up to sequence (\d+): replayed in ([\d.]+) s", done.stdout)
    assert found, done.stdout
    return float(found.group(2)), int(found.group(1)), time.perf_counter() - started, _children_cpu() - cpu_before


def live_path(var_dir: Path, nats_url: str) -> tuple[float, int, float, float]:
    """A rebuild of scoring into a database whose score log is empty: nothing is published yet, so
    every event goes the way a live one does (rescored at once, every changed line written as a score
    event), not the replay's way (folded, scored once per batch). How fast scoring keeps up."""
    url = f"sqlite+aiosqlite:///{var_dir / 'scoring-live.db'}"
    embedded.migrate("scoring", url)
    return rebuild("scoring", url, nats_url)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


MACHINE_SPEED = "machine: a pure-Python loop of 10 million additions (best of 3)"


def machine_speed() -> str:
    """How fast this machine runs Python, so that figures from two machines can be set side by side
    (the benches' machines differed by up to 3x from one stop to the next)."""
    best = float("inf")
    for _ in range(3):
        started, total = time.perf_counter(), 0
        for number in range(10_000_000):
            total += number
        best = min(best, time.perf_counter() - started)
    return f"{best:.2f} s"


async def read_floor(nats_url: str) -> tuple[int, float, float]:
    """What a replay cannot go below with nats-py and pydantic: the whole event stream read with one
    pull request on an ephemeral consumer (no work done per message but keeping its bytes), then
    every message decoded as an envelope. (messages, seconds reading, seconds decoding)"""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from kpi_common.streams import EVENTS
    from kpi_core.events import EventEnvelope

    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        total = (await js.stream_info(EVENTS.name)).state.messages
        received: list[bytes] = []
        done = asyncio.Event()

        async def keep(message: Any) -> None:
            received.append(message.data)
            if len(received) >= total:
                done.set()

        started = time.perf_counter()
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30)
        consumer = await js.add_consumer(EVENTS.name, config)
        inbox = client.new_inbox()
        await client.subscribe(inbox, cb=keep, pending_msgs_limit=total + 1)
        request = f'{{"batch": {total}, "expires": 60000000000}}'.encode()
        await client.publish(f"$JS.API.CONSUMER.MSG.NEXT.{EVENTS.name}.{consumer.name}", request, reply=inbox)
        await asyncio.wait_for(done.wait(), timeout=120)
        read = time.perf_counter() - started
        started = time.perf_counter()
        for payload in received:
            EventEnvelope.from_bytes(payload)
        return total, read, time.perf_counter() - started
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    bodies = year_of_measurements(catalogue())
    with tempfile.TemporaryDirectory() as folder:
        var_dir = Path(folder)
        urls = bench_system.database_urls(var_dir, args.postgres)
        system, keys = bench_system.start(var_dir, urls)
        reader = {"Authorization": f"Bearer {keys['admin']}"}
        query = {"catalogue": CATALOGUE[0], "version": CATALOGUE[1], "period": PERIOD}
        try:
            ingest, reporting = system.services["ingest"].url, system.services["reporting"].url
            scoring = system.services["scoring"].url
            posted, last, refused = asyncio.run(post_all(ingest, keys["bench"], bodies, args.concurrency))
            reporting_lag = wait_position(reporting, "/v1/rankings", query, reader, last)
            scoring_lag = scoring_caught_up(scoring, reader, last)
            latencies = ranking_latencies(reporting, query, reader, [last - 1 - step for step in range(100)])
            now_latencies = ranking_latencies(reporting, query, reader, [None] * 100)
            for name in ("scoring", "reporting"):
                embedded.stop(system.services[name].process)
            load_before = load_average()
            rebuilt = {name: rebuild(name, urls[name], system.nats_url) for name in ("scoring", "reporting")}
            load_after = load_average()
            live = None if args.postgres else live_path(var_dir, system.nats_url)
            floor = asyncio.run(read_floor(system.nats_url))
        finally:
            system.stop()
    accepted = len(bodies) - refused
    rows = [
        ("database", "PostgreSQL (embedded)" if args.postgres else "SQLite"),
        (MACHINE_SPEED, machine_speed()),
        ("measurements (63 provinces × every scored indicator)", f"{accepted} accepted, {refused} refused"),
        (f"POST, {args.concurrency} clients", f"{accepted / posted:.0f}/s ({posted:.1f} s)"),
        ("reporting caught up after the last POST", f"{reporting_lag:.1f} s"),
        ("scoring caught up after the last POST", f"{scoring_lag:.1f} s"),
        ("ranking query, 63 units × full catalogue, as_of (100 moments, uncached)", percentiles(latencies)),
        ("ranking query, 63 units × full catalogue, now (100 reads)", percentiles(now_latencies)),
        *(
            (
                f"rebuild {name} ({position} events): the replay",
                f"{seconds:.2f} s, {position / seconds:,.0f} events/s "
                f"({whole:.1f} s and {cpu:.1f} s of CPU with the command's start)",
            )
            for name, (seconds, position, whole, cpu) in rebuilt.items()
        ),
        (
            "scoring's live path: the stream replayed into an empty score log (each event rescored, its lines written)",
            "SQLite only" if live is None else f"{live[1] / live[0]:,.0f} events/s ({live[0]:.2f} s)",
        ),
        ("load average (1, 5, 15 min) before / after the rebuilds", f"{load_before} / {load_after}"),
        (
            f"floor: the event stream read raw ({floor[0]} messages, one pull), then decoded",
            f"read {floor[0] / floor[1]:,.0f}/s, decode {floor[0] / floor[2]:,.0f}/s, "
            f"both {floor[0] / (floor[1] + floor[2]):,.0f}/s",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
