"""`make bench`: throughput and latency of the whole system on the embedded default, and of the core.

Prints a table; the figures in the README come from this script on the 2-core CI machine.
Run with `--postgres` to put the three services on the embedded PostgreSQL server instead.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from tests.bench import full_year
from tests.bench import system as bench_system
from tests.bench.lean_http import LeanPool
from tests.conftest import fixture_catalogue
from tests.e2e.conftest import unit_ids

from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.inputs import RecordedInputs
from kpi_core.scoring import score_period

CATALOGUE = "mini-dti"
READER: dict[str, str] = {}  # the key the benchmark reads rankings with (unpublished stages need one)
# mini-dti ranks the peer group provinces: only its units may report, so a full provincial year is
# the 63 provinces valid in 2024 (bundled unit list, registered by ingest at start)
PROVINCES = unit_ids("provinces", 2024)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def measurement(index: int) -> dict[str, Any]:
    return {
        "catalogue_id": CATALOGUE,
        "catalogue_version": "1.0",
        "period": 2024,
        "unit_id": PROVINCES[index % len(PROVINCES)],
        "indicator": "3.1",
        "inputs": {"a": index % 1000, "b": 1000},
    }


def measurement_headers(key: str, idempotency_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key}


async def post_many(url: str, key: str, count: int, concurrency: int, offset: int) -> tuple[float, list[float], int]:
    """`count` POSTs from `concurrency` clients, each sending its next as soon as the last is answered."""
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(offset, offset + count):
        queue.put_nowait(index)
    last_sequence = 0

    async def worker(pool: LeanPool) -> None:
        nonlocal last_sequence
        while not queue.empty():
            index = queue.get_nowait()
            started = time.perf_counter()
            status, answer = await pool.post_json(
                "/v1/measurements", measurement(index), measurement_headers(key, f"bench-{index}")
            )
            latencies.append(time.perf_counter() - started)
            assert status == 201, (status, answer)
            last_sequence = max(last_sequence, answer["sequence"])

    async with LeanPool(url, concurrency) as pool:
        started = time.perf_counter()
        await asyncio.gather(*(worker(pool) for _ in range(concurrency)))
        return time.perf_counter() - started, latencies, last_sequence


async def post_paced(
    url: str, key: str, rate: float, seconds: float, offset: int, connections: int = 64
) -> tuple[float, list[float], int]:
    """An open-loop load: a POST is due every 1/rate s whether the ones before have answered or not;
    each latency counts from the moment its request was due (so a server that falls behind shows it,
    as does a request that waits for one of the `connections` to be free).
    Returns the rate answered, the latencies of the answered ones, and how many got no answer."""
    latencies: list[float] = []
    failed = 0
    count = int(rate * seconds)

    async def one(pool: LeanPool, index: int, due: float) -> None:
        nonlocal failed
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        try:
            status, answer = await pool.post_json(
                "/v1/measurements", measurement(index), measurement_headers(key, f"paced-{index}")
            )
        except (ConnectionError, asyncio.IncompleteReadError):
            failed += 1
            return
        latencies.append(time.perf_counter() - due)
        assert status == 201, (status, answer)

    async with LeanPool(url, connections) as pool:
        start = time.perf_counter() + 0.2
        await asyncio.gather(*(one(pool, offset + i, start + i / rate) for i in range(count)))
        elapsed = time.perf_counter() - start
    return len(latencies) / elapsed, latencies, failed


def wait_projected(url: str, sequence: int, client: httpx.Client | None = None) -> float:
    """Seconds until the ranking carries `sequence`, polled every 10 ms (on `client`, else a client of its
    own: a client per poll would build an SSL context per poll, tens of ms of CPU taken from the services)."""
    if client is None:
        with httpx.Client(base_url=url, timeout=30) as own:
            return wait_projected(url, sequence, own)
    started = time.perf_counter()
    params = {"catalogue": CATALOGUE, "version": "1.0", "period": 2024}
    while True:
        found = client.get(f"{url}/v1/rankings", params=params, headers=READER).json()
        if found.get("as_of_sequence", 0) >= sequence:
            return time.perf_counter() - started
        time.sleep(0.01)


def visibility_latency(ingest: str, reporting: str, key: str, samples: int) -> list[float]:
    """From the POST being sent to the ranking reflecting it."""
    found = []
    with httpx.Client(timeout=30) as client:
        for index in range(samples):
            started = time.perf_counter()
            response = client.post(
                f"{ingest}/v1/measurements",
                json=measurement(900_000 + index),
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"visible-{index}"},
            )
            wait_projected(reporting, response.json()["sequence"], client)
            found.append(time.perf_counter() - started)
    return found


def core_figures(catalogue: Catalogue, units: int) -> float:
    members = PROVINCES[:units]
    inputs = {
        unit: {
            leaf.code: RecordedInputs(leaf.code, {"a": Decimal(u), "b": Decimal(100)}, "e", 1)
            for leaf in catalogue.leaves()
            if leaf.rule is not None and leaf.rule.kind == "ratio"
        }
        for u, unit in enumerate(members)
    }
    started = time.perf_counter()
    for _ in range(20):
        score_period(catalogue, inputs, units=members)  # as the services score: exactly the period's units
    return (time.perf_counter() - started) / 20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--rate", type=float, default=200.0, help="offered POSTs per second of the paced run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        var_dir = Path(folder)
        system, keys = bench_system.start(var_dir, bench_system.database_urls(var_dir, args.postgres))
        reporter = keys["bench"]
        READER.update({"Authorization": f"Bearer {keys['admin']}"})
        try:
            ingest, reporting = system.services["ingest"].url, system.services["reporting"].url
            httpx.post(f"{ingest}/v1/catalogues", json=fixture_catalogue(), headers=READER).raise_for_status()
            serial_time, serial_latencies, _ = asyncio.run(post_many(ingest, reporter, args.count // 4, 1, 0))
            elapsed, latencies, last = asyncio.run(post_many(ingest, reporter, args.count, args.concurrency, 10_000))
            drain = wait_projected(reporting, last)
            paced_rate, paced, unanswered = asyncio.run(post_paced(ingest, reporter, args.rate, 5.0, 50_000))
            visible = visibility_latency(ingest, reporting, reporter, 50)
        finally:
            system.stop()
    catalogue = parse_catalogue(fixture_catalogue())
    rows = [
        ("database", "PostgreSQL (embedded)" if args.postgres else "SQLite"),
        (full_year.MACHINE_SPEED, full_year.machine_speed()),
        (
            "POST /v1/measurements, 1 client",
            f"{args.count // 4 / serial_time:.0f}/s, p50 {statistics.median(serial_latencies) * 1000:.1f} ms",
        ),
        (
            f"POST /v1/measurements, {args.concurrency} clients",
            f"{args.count / elapsed:.0f}/s, p50 {statistics.median(latencies) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms",
        ),
        ("projection caught up after the burst", f"{drain * 1000:.0f} ms"),
        (
            f"POST /v1/measurements, {args.rate:.0f}/s offered for 5 s (open loop)",
            f"{paced_rate:.0f}/s answered, p50 {statistics.median(paced) * 1000:.1f} ms, "
            f"p99 {percentile(paced, 0.99) * 1000:.1f} ms, {unanswered} without an answer",
        ),
        (
            "POST → ranking shows it (50 samples)",
            f"p50 {statistics.median(visible) * 1000:.0f} ms, p99 {percentile(visible, 0.99) * 1000:.0f} ms",
        ),
        ("score_period, 63 units (core)", f"{core_figures(catalogue, 63) * 1000:.2f} ms"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
