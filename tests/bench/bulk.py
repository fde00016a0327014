"""Bulk submission (issue 13): measurement sets over HTTP against the running system, side by side
with single POSTs of the same measurements.

- the real provincial year (`tests/bench/full_year.py`: vn-dti-province 1.0, every scored indicator
  of the 63 provinces of 2024) as one JSON set;
- a 10,000-row set: the same catalogue's rules and inputs for 100 bench units (a peer group and a
  copy of the catalogue registered for it), as JSON and as CSV, then re-imported unchanged;
- the single-POST path on a sample of the same rows, 8 clients.
Each set is one transaction (one lock of the counter); every measurement is its own event with its
own sequence and chain link: the chain is verified at the end. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from tests.bench import full_year
from tests.bench import system as bench_system

BENCH_UNITS = [f"bench-{index:03d}" for index in range(100)]
BENCH_CATALOGUE = ("bench-dti-province", "1.0")
SET_ROWS = 10_000


def bench_peer_group() -> dict[str, Any]:
    return {
        "format": "kpi-ledger.units/v1",
        "id": "bench-units",
        "version": "1",
        "title_vi": "Đơn vị thử tải",
        "sources": [{"document": "tests/bench/bulk.py: units made up for the benchmark"}],
        "units": [
            {"id": unit, "name_vi": f"Đơn vị {unit}", "kind": "province", "valid_from": None, "valid_to": None}
            for unit in BENCH_UNITS
        ],
    }


def bench_catalogue() -> dict[str, Any]:
    """The provincial catalogue's rules, for the bench units."""
    document = full_year.catalogue().document()
    return {**document, "id": BENCH_CATALOGUE[0], "peer_group": "bench-units", "reference_results": []}


def set_body(catalogue: tuple[str, str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"catalogue_id": catalogue[0], "catalogue_version": catalogue[1], "period": full_year.PERIOD, "rows": rows}


def bench_rows(year: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SET_ROWS rows: bench unit i reports what province i mod 63 reported."""
    by_unit: dict[str, list[dict[str, Any]]] = {}
    for body in year:
        by_unit.setdefault(body["unit_id"], []).append(body)
    provinces = list(by_unit)
    rows = []
    for index, unit in enumerate(BENCH_UNITS):
        for body in by_unit[provinces[index % len(provinces)]]:
            rows.append({"unit_id": unit, "indicator": body["indicator"], "inputs": body["inputs"]})
    return rows[:SET_ROWS]


def as_csv(rows: list[dict[str, Any]]) -> bytes:
    names = sorted({name for row in rows for name in row["inputs"]})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["unit_id", "indicator", *names])
    for row in rows:
        writer.writerow([row["unit_id"], row["indicator"], *(_cell(row["inputs"].get(name)) for name in names)])
    return out.getvalue().encode("utf-8")


def _cell(value: Any) -> str:
    return "" if value is None else "Có" if value is True else "Không" if value is False else str(value)


def cpu_seconds(pid: int | None) -> float:
    """The CPU time a process has used (user and system, every thread), from Linux's /proc; 0 elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post_set(
    client: httpx.Client,
    key: str,
    content: bytes,
    media_type: str,
    idempotency_key: str,
    period: int = full_year.PERIOD,
    ingest_pid: int | None = None,
) -> tuple[float, dict[str, Any]]:
    """One set posted: the seconds it took and its summary (with `cpu_seconds`, what ingest spent on it)."""
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key, "content-type": media_type}
    params = {"catalogue_id": BENCH_CATALOGUE[0], "catalogue_version": BENCH_CATALOGUE[1], "period": period}
    started, cpu = time.perf_counter(), cpu_seconds(ingest_pid)
    response = client.post("/v1/measurement-sets", content=content, headers=headers, params=params)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds(ingest_pid) - cpu
    assert response.status_code in (200, 201), response.text[:500]
    return elapsed, {**response.json(), "cpu_seconds": cpu}


def shown(seconds: float, summary: dict[str, Any]) -> str:
    rate, cpu = summary["imported"] / seconds, summary["cpu_seconds"]
    return f"{rate:,.0f}/s ({seconds * 1000:.0f} ms, ingest CPU {cpu:.2f} s)"


def repeated_sets(
    client: httpx.Client,
    key: str,
    rows: list[dict[str, Any]],
    count: int,
    ingest_pid: int,
    reporting: str,
    reader: dict[str, str],
) -> tuple[str, str]:
    """The 10,000-row JSON set again, `count` times, each into a period of its own (every row a new
    measurement) once scoring and reporting have taken the one before: on a machine whose speed
    swings from minute to minute, the median and the best of several sets say more than one."""
    taken: list[tuple[float, dict[str, Any]]] = []
    for index in range(count):
        period = full_year.PERIOD - 3 - index
        content = json.dumps({**set_body(BENCH_CATALOGUE, rows), "period": period}).encode()
        seconds, summary = post_set(
            client, key, content, "application/json", f"bench-json-{period}", period, ingest_pid=ingest_pid
        )
        taken.append((seconds, summary))
        query = {"catalogue": BENCH_CATALOGUE[0], "version": BENCH_CATALOGUE[1], "period": period}
        full_year.wait_position(reporting, "/v1/rankings", query, reader, summary["last_sequence"])
    taken.sort(key=lambda one: one[0])
    median, best = taken[len(taken) // 2], taken[0]
    return (
        f"{SET_ROWS:,}-row JSON set, {count} more, each into a new period",
        f"median {shown(*median)}; best {shown(*best)}",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--singles", type=int, default=1000, help="single POSTs of the comparison")
    parser.add_argument("--sets", type=int, default=5, help="10,000-row JSON sets, each into a period of its own")
    args = parser.parse_args()
    year = full_year.year_of_measurements(full_year.catalogue())
    rows = bench_rows(year)
    with tempfile.TemporaryDirectory() as folder:
        var_dir = Path(folder)
        urls = bench_system.database_urls(var_dir, args.postgres)
        system, keys = bench_system.start(var_dir, urls)
        admin = {"Authorization": f"Bearer {keys['admin']}"}
        figures: list[tuple[str, str]] = [("database", "PostgreSQL (embedded)" if args.postgres else "SQLite")]
        figures.append((full_year.MACHINE_SPEED, full_year.machine_speed()))
        figures.append(("load average at the start", full_year.load_average()))
        try:
            ingest = system.services["ingest"].url
            pid = system.services["ingest"].process.pid
            reporting = system.services["reporting"].url
            with httpx.Client(base_url=ingest, timeout=600) as client:
                for path, document in (("/v1/peer-groups", bench_peer_group()), ("/v1/catalogues", bench_catalogue())):
                    registered = client.post(path, json=document, headers=admin)
                    assert registered.status_code == 201, registered.text[:1000]
                provincial = [{key: body[key] for key in ("unit_id", "indicator", "inputs")} for body in year]
                content = json.dumps(set_body(full_year.CATALOGUE, provincial)).encode()
                seconds, summary = post_set(
                    client, keys["bench"], content, "application/json", "year-2024", ingest_pid=pid
                )
                figures.append(
                    (
                        f"provincial year as one JSON set ({summary['imported']} rows, {len(content) / 1e6:.1f} MB)",
                        shown(seconds, summary),
                    )
                )
                last = summary["last_sequence"]
                query = {
                    "catalogue": full_year.CATALOGUE[0],
                    "version": full_year.CATALOGUE[1],
                    "period": full_year.PERIOD,
                }
                lag = full_year.wait_position(reporting, "/v1/rankings", query, admin, last)
                figures.append(("reporting ranks the 63 provinces after the set", f"{lag:.1f} s"))

                bench_query = {
                    "catalogue": BENCH_CATALOGUE[0],
                    "version": BENCH_CATALOGUE[1],
                    "period": full_year.PERIOD,
                }
                content = json.dumps(set_body(BENCH_CATALOGUE, rows)).encode()
                seconds, summary = post_set(
                    client, keys["bench"], content, "application/json", "bench-json", ingest_pid=pid
                )
                figures.append((f"{SET_ROWS:,}-row JSON set ({len(content) / 1e6:.1f} MB)", shown(seconds, summary)))
                lag = full_year.wait_position(reporting, "/v1/rankings", bench_query, admin, summary["last_sequence"])
                figures.append((f"reporting ranks the {len(BENCH_UNITS)} bench units after the set", f"{lag:.1f} s"))
                figures.append(repeated_sets(client, keys["bench"], rows, args.sets, pid, reporting, admin))
                seconds, summary = post_set(
                    client, keys["bench"], content, "application/json", "bench-json-again", ingest_pid=pid
                )
                figures.append(
                    (
                        f"the same set again, new key ({summary['unchanged']:,} unchanged)",
                        f"{seconds * 1000:.0f} ms (ingest CPU {summary['cpu_seconds']:.2f} s)",
                    )
                )
                content = as_csv(rows)
                seconds, summary = post_set(
                    client, keys["bench"], content, "text/csv", "bench-csv", full_year.PERIOD - 1, ingest_pid=pid
                )
                figures.append(
                    (f"{SET_ROWS:,}-row CSV set, another period ({len(content) / 1e6:.1f} MB)", shown(seconds, summary))
                )
                verified = client.get("/v1/audit/verify", headers=admin, timeout=600).json()
                figures.append(("audit chain after the sets", f"ok={verified['ok']}, {verified['events']:,} events"))
                earlier = {**bench_query, "period": full_year.PERIOD - 1}
                full_year.wait_position(reporting, "/v1/rankings", earlier, admin, summary["last_sequence"])
            # another period again: every POST is a new measurement, as in the sets
            scope = {"catalogue_id": BENCH_CATALOGUE[0], "catalogue_version": BENCH_CATALOGUE[1]}
            singles = [{**scope, "period": full_year.PERIOD - 2, **row} for row in rows[: args.singles]]
            posted, _, refused = asyncio.run(full_year.post_all(ingest, keys["bench"], singles, 8))
            figures.append(
                (
                    f"single POST /v1/measurements, 8 clients ({len(singles) - refused} rows)",
                    f"{(len(singles) - refused) / posted:,.0f}/s",
                )
            )
        finally:
            system.stop()
    figures.append(("load average at the end", full_year.load_average()))
    width = max(len(name) for name, _ in figures)
    for name, value in figures:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
