"""`make bench`, third part: the dashboard's pages for a full provincial year (issue 14's target:
every page under 200 ms for 63 provinces × the full vn-dti-province catalogue).

Loads the year as `full_year` does (its catalogue, measurements and posting), has an evaluator accept
pillar 1 of every province and an approver publish (incomplete), then reads each page as a logged-in
browser would (the session cookie from the login form, Accept: text/html) and prints p50/p99 per page.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from tests.bench import system as bench_system
from tests.bench.full_year import (
    CATALOGUE,
    PERIOD,
    PROVINCES,
    catalogue,
    percentiles,
    post_all,
    wait_position,
    year_of_measurements,
)

TARGET_MS = 200
SCOPE = {"catalogue_id": CATALOGUE[0], "catalogue_version": CATALOGUE[1], "period": PERIOD}
QUERY = {"catalogue": CATALOGUE[0], "version": CATALOGUE[1], "period": PERIOD}
HTML = {"Accept": "text/html"}


def grant(ingest: str, admin: str, key_id: str, role: str) -> str:
    granted = httpx.post(
        f"{ingest}/v1/keys", json={"id": key_id, "roles": [role]}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert granted.status_code == 201, granted.text
    return str(granted.json()["secret"])


def wait_known(reporting: str, secret: str) -> None:
    """Reporting learns keys from the stream: wait until it accepts this one."""
    with httpx.Client(base_url=reporting, headers={"Authorization": f"Bearer {secret}"}) as client:
        while client.get("/v1/rankings", params=QUERY).status_code == 401:
            time.sleep(0.1)


def verify_and_publish(ingest: str, reporting: str, evaluator: str, approver: str) -> None:
    """Pillar 1 of every province accepted, then a publication (incomplete, with its reason), frozen."""
    leaves = [node.code for node in catalogue().leaves() if node.scored and node.code.split(".")[0] == "1"]
    with httpx.Client(base_url=ingest, timeout=60) as client:
        for unit in PROVINCES:
            for code in leaves:
                body = {**SCOPE, "unit_id": unit, "indicator": code, "decision": "accepted"}
                headers = {"Authorization": f"Bearer {evaluator}", "Idempotency-Key": f"bench-v-{unit}-{code}"}
                answer = client.post("/v1/verifications", json=body, headers=headers)
                assert answer.status_code in (201, 422, 409), answer.text  # 422/409: a leaf the unit did not report
        body = {**SCOPE, "incomplete_reason": "Bench: pillar 1 verified only"}
        headers = {"Authorization": f"Bearer {approver}", "Idempotency-Key": "bench-publication"}
        published = client.post("/v1/publications", json=body, headers=headers)
        assert published.status_code == 201, published.text
    with httpx.Client(base_url=reporting) as public:
        while public.get("/v1/rankings", params={**QUERY, "stage": "published"}).status_code != 200:
            time.sleep(0.1)


def logged_in(reporting: str, secret: str) -> httpx.Client:
    """A client holding the dashboard's cookies after the login form, as a browser would."""
    client = httpx.Client(base_url=reporting, timeout=60, headers=HTML)
    form = client.get("/dashboard/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    cookies = {"kpi_dashboard_csrf": csrf.group(1)}
    done = client.post("/dashboard/login", data={"key": secret, "csrf": csrf.group(1)}, cookies=cookies)
    assert done.status_code == 303, done.text
    cookies["kpi_dashboard_key"] = secret
    client.headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    return client


PAGES: list[tuple[str, Callable[[int], tuple[str, dict[str, Any]]]]] = [
    ("rankings, self-assessment", lambda n: ("/dashboard", {**QUERY, "stage": "self_assessment"})),
    ("rankings, verified, by pillar", lambda n: ("/dashboard", {**QUERY, "stage": "verification", "pillar": "1"})),
    ("rankings, published", lambda n: ("/dashboard", {**QUERY, "stage": "published"})),
    (
        "scorecard, self-assessment",
        lambda n: (f"/dashboard/units/{PROVINCES[n % 63]}", {**QUERY, "stage": "self_assessment"}),
    ),
    ("scorecard, published", lambda n: (f"/dashboard/units/{PROVINCES[n % 63]}", {**QUERY, "stage": "published"})),
    ("trend", lambda n: (f"/dashboard/units/{PROVINCES[n % 63]}/trend", {**QUERY, "stage": "self_assessment"})),
    (
        "trend, one indicator",
        lambda n: (
            f"/dashboard/units/{PROVINCES[n % 63]}/trend",
            {**QUERY, "stage": "self_assessment", "indicator": "1.1"},
        ),
    ),
    ("audit trail", lambda n: (f"/dashboard/units/{PROVINCES[n % 63]}/history", QUERY)),
    ("publications", lambda n: ("/dashboard/publications", QUERY)),
]


# the JSON the two heaviest pages are drawn from, for comparison (what the page adds is layout and SVG)
TWINS: list[tuple[str, Callable[[int], tuple[str, dict[str, Any]]]]] = [
    ("(JSON) /v1/rankings, self-assessment", lambda n: ("/v1/rankings", {**QUERY, "stage": "self_assessment"})),
    (
        "(JSON) /v1/units/{unit}/scorecard",
        lambda n: (f"/v1/units/{PROVINCES[n % 63]}/scorecard", {**QUERY, "stage": "self_assessment"}),
    ),
]


def time_pages(
    client: httpx.Client, reads: int, pages: list[tuple[str, Callable[[int], tuple[str, dict[str, Any]]]]]
) -> list[tuple[str, list[float], int, float]]:
    found = []
    for name, request in pages:
        latencies, size, first = [], 0, 0.0
        for n in range(-1, reads):  # the first read (n = -1) is a warm-up: nothing memoised yet
            if n == 0:
                first, latencies = latencies[0], []
            path, params = request(max(n, 0))
            started = time.perf_counter()
            page = client.get(path, params=params)
            latencies.append(time.perf_counter() - started)
            assert page.status_code == 200, f"{name}: {page.status_code} {page.text[:300]}"
            size = max(size, len(page.content))
        found.append((name, latencies, size, first))
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--reads", type=int, default=50, help="reads of each page")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    bodies = year_of_measurements(catalogue())
    with tempfile.TemporaryDirectory() as folder:
        var_dir = Path(folder)
        urls = bench_system.database_urls(var_dir, args.postgres)
        system, keys = bench_system.start(var_dir, urls)
        try:
            ingest, reporting = system.services["ingest"].url, system.services["reporting"].url
            posted, last, refused = asyncio.run(post_all(ingest, keys["bench"], bodies, args.concurrency))
            reader = {"Authorization": f"Bearer {keys['admin']}"}
            wait_position(reporting, "/v1/rankings", QUERY, reader, last)
            evaluator = grant(ingest, keys["admin"], "bench-evaluator", "evaluator")
            approver = grant(ingest, keys["admin"], "bench-approver", "approver")
            wait_known(reporting, evaluator)
            verify_and_publish(ingest, reporting, evaluator, approver)
            client = logged_in(reporting, keys["admin"])
            try:
                figures = time_pages(client, args.reads, PAGES)
                with httpx.Client(base_url=reporting, timeout=60, headers=reader) as api:
                    figures += time_pages(api, args.reads, TWINS)
            finally:
                client.close()
        finally:
            system.stop()
    database = "PostgreSQL (embedded)" if args.postgres else "SQLite"
    print(
        f"dashboard pages: {len(bodies) - refused} measurements (63 provinces × every scored indicator) posted "
        f"in {posted:.0f} s; {args.reads} reads of each page, logged in (session cookie); {database}"
    )
    width = max(len(name) for name, *_ in figures)
    slow = []
    for name, latencies, size, first in figures:
        print(f"{name:<{width}}  {percentiles(latencies)}  (first read {first * 1000:.0f} ms; {size / 1024:.0f} kB)")
        if not name.startswith("(JSON)") and sorted(latencies)[len(latencies) // 2] * 1000 > TARGET_MS:
            slow.append(name)
    print(
        f"target: every page under {TARGET_MS} ms (p50 of warm reads): "
        + ("met" if not slow else f"missed by {', '.join(slow)}")
    )


if __name__ == "__main__":
    main()
