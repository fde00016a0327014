"""Scaled out on PostgreSQL: two ingest instances (two relays) on one database, an API-only reporting
replica; writers hit both instances at once and everything arrives once, in sequence order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from kpi_common import streams
from kpi_core.events import EventEnvelope
from kpi_ingest import admin
from kpi_launcher import embedded
from kpi_launcher.registry import SERVICES
from tests.conftest import fixture_catalogue, postgres_database
from tests.e2e.conftest import unit_ids

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
SCOPE = {"catalogue": "mini-dti", "version": "1.0", "period": 2024}
WRITERS = unit_ids("provinces", 2024)[:7]  # seven registered provinces (mini-dti ranks the peer group provinces)


@pytest.fixture
def cluster(tmp_path: Path, postgres_base_url: str) -> Iterator[dict[str, object]]:
    databases = {name: postgres_database(postgres_base_url) for name in SERVICES}
    embedded.migrate("ingest", databases["ingest"])
    keys = admin.grant_many(
        databases["ingest"],
        {"admin": (["admin", "auditor"], [], ["*"], None), "writer": (["reporter"], ["*"], ["*"], None)},
    )
    nats_port = embedded.free_port()
    nats = embedded.start_nats(nats_port, tmp_path / "nats")
    nats_url = f"nats://127.0.0.1:{nats_port}"
    for name in SERVICES:
        embedded.migrate(name, databases[name])
    processes: list[embedded.ServiceProcess] = []
    try:
        for _ in range(2):
            env = {
                "KPI_INGEST_DATABASE_URL": databases["ingest"],
                "KPI_INGEST_NATS_URL": nats_url,
                "KPI_INGEST_CHECKPOINT_KEY_FILE": str(tmp_path / "checkpoint.pem"),
            }
            processes.append(embedded.start_service("ingest", embedded.free_port(), env))
            embedded.wait_ready(processes[-1])
        for name, consumer in (("scoring", "true"), ("reporting", "true"), ("reporting", "false")):
            prefix = f"KPI_{name.upper()}_"
            env = {
                f"{prefix}DATABASE_URL": databases[name],
                f"{prefix}NATS_URL": nats_url,
                f"{prefix}RUN_CONSUMER": consumer,
            }
            processes.append(embedded.start_service(name, embedded.free_port(), env))
            embedded.wait_ready(processes[-1])
        yield {
            "ingest": processes[:2],
            "reporting": processes[3],
            "replica": processes[4],
            "keys": keys,
            "nats": nats_url,
        }
    finally:
        for process in reversed(processes):
            embedded.stop(process.process)
        embedded.stop(nats)


async def stream_order(nats_url: str) -> list[int]:
    """The event sequences in the order their first copy reached the stream (later copies are duplicates)."""
    client = await nats.connect(nats_url)
    js = client.jetstream()
    info = await js.stream_info(streams.STREAM_NAME)
    seen: dict[int, None] = {}
    for stream_sequence in range(1, info.state.last_seq + 1):
        message = await js.get_msg(streams.STREAM_NAME, stream_sequence)
        seen.setdefault(EventEnvelope.from_bytes(message.data or b"").sequence, None)
    await client.close()
    return list(seen)


async def post_concurrently(urls: list[str], key: str, count: int) -> None:
    async with httpx.AsyncClient(timeout=30) as client:

        async def post(index: int) -> None:
            body = {
                "catalogue_id": "mini-dti",
                "catalogue_version": "1.0",
                "period": 2024,
                "unit_id": WRITERS[index % 7],
                "indicator": "3.1",
                "inputs": {"a": index % 100, "b": 100},
            }
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"scale-{index}"}
            response = await client.post(f"{urls[index % 2]}/v1/measurements", json=body, headers=headers)
            assert response.status_code == 201, response.text

        await asyncio.gather(*(post(index) for index in range(count)))


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """One client for the test: each new one builds an SSL context (tens of ms of CPU)."""
    with httpx.Client(timeout=30) as client:
        yield client


def test_two_ingest_instances_and_a_read_replica_on_one_postgresql(
    cluster: dict[str, object], http: httpx.Client
) -> None:
    ingest = [process.url for process in cluster["ingest"]]  # type: ignore[attr-defined]
    keys: dict[str, str] = cluster["keys"]  # type: ignore[assignment]
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    assert http.post(f"{ingest[1]}/v1/catalogues", json=fixture_catalogue(), headers=admin).status_code == 201
    asyncio.run(post_concurrently(ingest, keys["writer"], 120))
    events = http.get(f"{ingest[0]}/v1/events", params={"limit": 1000}, headers=admin).json()["events"]
    head = events[-1]["sequence"]
    assert [event["sequence"] for event in events] == list(range(1, head + 1))
    reporting = cluster["reporting"].url  # type: ignore[attr-defined]
    replica = cluster["replica"].url  # type: ignore[attr-defined]

    def projected() -> bool:
        return http.get(f"{reporting}/v1/rankings", params=SCOPE, headers=admin).json().get("as_of_sequence") == head

    deadline = time.monotonic() + 30
    while not projected():
        assert time.monotonic() < deadline, "reporting did not catch up"
        time.sleep(0.1)
    first_copies = asyncio.run(stream_order(cluster["nats"]))  # type: ignore[arg-type]
    assert first_copies == list(range(1, head + 1))  # two relays, yet the stream's first copies are in order
    history = http.get(f"{reporting}/v1/units/{WRITERS[3]}/history", params=SCOPE, headers=admin).json()
    assert len([entry for entry in history if entry["type"] == "vn.kpi.measurement.recorded.v1"]) == len(
        range(3, 120, 7)
    )
    assert (
        http.get(f"{replica}/v1/rankings", params=SCOPE, headers=admin).content
        == http.get(f"{reporting}/v1/rankings", params=SCOPE, headers=admin).content
    )
    assert http.get(f"{replica}/readyz").json()["checks"] == {"database": "ok"}
