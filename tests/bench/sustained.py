"""Sustained load (issue 12): measurements offered at a steady rate into ingest as small measurement
sets (open loop: a set is sent when it is due, whether the ones before have answered or not), on
the real provincial catalogue (vn-dti-province 1.0, the 63 provinces of 2024, every scored
indicator), while scoring and reporting follow. For each set: how long from the moment it was due
until `GET /v1/rankings` answers for its last sequence (`as_of_sequence`), polled every 20 ms.

The year's rows are offered again with other provinces' inputs once they run out, so every pass
stores corrections (a row whose inputs did not change stores nothing and is not counted).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from tests.bench import full_year
from tests.bench import system as bench_system
from tests.bench.bulk import set_body


def offered_rows(year: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """`count` set rows: the year, then the year again and again, each row with the inputs of the
    next province whose inputs differ from the row's last ones (so each is a correction)."""
    by_key = {(body["unit_id"], body["indicator"]): body["inputs"] for body in year}
    units = sorted({body["unit_id"] for body in year})
    last = dict(by_key)
    shifts = {key: 0 for key in by_key}
    rows: list[dict[str, Any]] = [
        {"unit_id": body["unit_id"], "indicator": body["indicator"], "inputs": body["inputs"]} for body in year
    ]
    while len(rows) < count:
        for body in year:
            key = (body["unit_id"], body["indicator"])
            for _ in units:
                shifts[key] += 1
                other = units[(units.index(body["unit_id"]) + shifts[key]) % len(units)]
                inputs = by_key.get((other, body["indicator"]), last[key])
                if inputs != last[key]:
                    break
            if inputs == last[key]:
                continue  # every province measured this indicator alike: nothing to correct it to
            last[key] = inputs
            rows.append({"unit_id": body["unit_id"], "indicator": body["indicator"], "inputs": inputs})
    return rows[:count]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def offer(
    ingest: str,
    scoring: str,
    reporting: str,
    keys: dict[str, str],
    rows: list[dict[str, Any]],
    rate: float,
    set_rows: int,
    name: str,
) -> dict[str, Any]:
    sets = [rows[start : start + set_rows] for start in range(0, len(rows), set_rows)]
    interval = set_rows / rate
    answered: list[tuple[float, float, int, int]] = []  # (due, answered at, last sequence, events stored)
    visible: dict[int, float] = {}  # last sequence -> when the ranking first answered for it
    scored: dict[int, float] = {}  # last sequence -> when scoring first showed what it changed
    last_unit: dict[int, str] = {}  # last sequence -> the unit of the set's last row
    sending_done = asyncio.Event()
    params = {"catalogue_id": full_year.CATALOGUE[0], "catalogue_version": full_year.CATALOGUE[1]}
    params["period"] = str(full_year.PERIOD)

    async def send(client: httpx.AsyncClient, index: int, due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        headers = {
            "Authorization": f"Bearer {keys['bench']}",
            "Idempotency-Key": f"{name}-{index}",
            "content-type": "application/json",
        }
        content = json.dumps(set_body(full_year.CATALOGUE, sets[index])).encode()
        response = await client.post("/v1/measurement-sets", content=content, headers=headers, params=params)
        assert response.status_code in (200, 201), response.text[:500]
        summary = response.json()
        stored = summary["imported"] + summary["replaced"]
        if stored:
            last_unit[summary["last_sequence"]] = sets[index][-1]["unit_id"]
            answered.append((due, time.perf_counter(), summary["last_sequence"], stored))

    async def watch(client: httpx.AsyncClient) -> None:
        query = {"catalogue": full_year.CATALOGUE[0], "version": full_year.CATALOGUE[1], "period": full_year.PERIOD}
        headers = {"Authorization": f"Bearer {keys['admin']}"}
        while True:
            found = (await client.get("/v1/rankings", params=query, headers=headers)).json()
            now, position = time.perf_counter(), found.get("as_of_sequence", 0)
            for _, _, last, _ in answered:
                if last <= position and last not in visible:
                    visible[last] = now
            if sending_done.is_set() and all(last in visible for _, _, last, _ in answered):
                return
            await asyncio.sleep(0.02)

    async def watch_scoring(client: httpx.AsyncClient) -> None:
        """The total of the unit of a set's last row carries the last event that touched it."""
        headers = {"Authorization": f"Bearer {keys['admin']}"}
        query = {"catalogue": full_year.CATALOGUE[0], "version": full_year.CATALOGUE[1], "period": full_year.PERIOD}
        while not (sending_done.is_set() and all(last in scored for _, _, last, _ in answered)):
            waiting = [(last, unit) for _, _, last, _ in answered if last not in scored for unit in [last_unit[last]]]
            if waiting:
                last, unit = waiting[0]
                total = await client.get(f"/v1/units/{unit}/scores/*", params=query, headers=headers)
                if total.status_code == 200 and total.json()["as_of_sequence"] >= last:
                    scored[last] = time.perf_counter()
                    continue
            await asyncio.sleep(0.02)

    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with (
        httpx.AsyncClient(base_url=ingest, timeout=120, limits=limits) as sender,
        httpx.AsyncClient(base_url=reporting, timeout=120) as watcher,
        httpx.AsyncClient(base_url=scoring, timeout=120) as scoring_watcher,
    ):
        watching = asyncio.create_task(watch(watcher))
        watching_scoring = asyncio.create_task(watch_scoring(scoring_watcher))
        start = time.perf_counter() + 0.2
        await asyncio.gather(*(send(sender, index, start + index * interval) for index in range(len(sets))))
        sent = time.perf_counter() - start
        sending_done.set()
        await watching
        await watching_scoring
        drained = time.perf_counter() - start
        load = os.getloadavg()[0]
    stored = sum(count for *_, count in answered)
    return {
        "offered": len(rows),
        "stored": stored,
        "seconds": sent,
        "drained": drained,
        "post": [answered_at - due for due, answered_at, _, _ in answered],
        "visible": [visible[last] - due for due, _, last, _ in answered],
        "scored": [scored[last] - due for due, _, last, _ in answered],
        "load": load,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0, help="measurements offered per second")
    parser.add_argument("--set-rows", type=int, default=100, help="rows of each set")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    year = full_year.year_of_measurements(full_year.catalogue())
    with tempfile.TemporaryDirectory() as folder:
        var_dir = Path(folder)
        system, keys = bench_system.start(var_dir, bench_system.database_urls(var_dir, args.postgres))
        try:
            ingest, reporting = system.services["ingest"].url, system.services["reporting"].url
            scoring = system.services["scoring"].url
            warm = offered_rows(year, len(year))  # the year's first measurements, so the load is corrections
            result = asyncio.run(offer(ingest, scoring, reporting, keys, warm, 5_000, 1_000, "warm"))
            rows = offered_rows(year, int(args.rate * args.seconds) + len(year))[len(year) :]
            result = asyncio.run(offer(ingest, scoring, reporting, keys, rows, args.rate, args.set_rows, "sustained"))
        finally:
            system.stop()
    figures = [
        ("database", "PostgreSQL (embedded)" if args.postgres else "SQLite"),
        (full_year.MACHINE_SPEED, full_year.machine_speed()),
        (
            f"offered: {args.rate:,.0f} measurements/s as sets of {args.set_rows} for {args.seconds:.0f} s",
            f"{result['offered']:,} rows, {result['stored']:,} stored (corrections), "
            f"{result['stored'] / result['seconds']:,.0f}/s stored",
        ),
        (
            "set POST answered (from when it was due)",
            f"p50 {percentile(result['post'], 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(result['post'], 0.99) * 1000:.0f} ms",
        ),
        (
            "set due → scoring has scored its last event",
            f"p50 {percentile(result['scored'], 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(result['scored'], 0.99) * 1000:.0f} ms",
        ),
        (
            "set due → the ranking answers for its last event",
            f"p50 {percentile(result['visible'], 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(result['visible'], 0.99) * 1000:.0f} ms, max {max(result['visible']) * 1000:.0f} ms",
        ),
        ("everything ranked after the first set was due", f"{result['drained']:.1f} s"),
        ("load average (1 min) at the end", f"{result['load']:.1f}"),
    ]
    width = max(len(name) for name, _ in figures)
    for name, value in figures:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
