"""Outbox relay throughput on a real nats-server: events/s from a full outbox to an acknowledged stream.

    .venv/bin/python -m tests.bench.relay [--events 10000] [--compare path/to/outbox_relay.py]

Each run gets a fresh nats-server and a fresh copy of one SQLite ingest database holding the events
(built once), and calls `publish_pending` until the outbox is empty. `--compare` measures another
`outbox_relay.py` beside this one (it must define `OutboxRelay(sessions, nats_url)` with `nats` and
`publish_pending`), e.g. the one-at-a-time relay: `git show 0a3158a:services/ingest/src/kpi_ingest/
entrypoints/outbox_relay.py > /tmp/old_relay.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats

from kpi_common import streams
from kpi_common.db import make_engine, session_factory
from kpi_common.migrations import upgrade
from kpi_core.events import MeasurementRecorded
from kpi_ingest import MIGRATIONS_DIR
from kpi_ingest.adapters.event_store import EventStore
from kpi_ingest.entrypoints.outbox_relay import OutboxRelay
from kpi_launcher import embedded

RelayFactory = Callable[[Any, str], Any]


async def build_database(path: Path, count: int) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(MIGRATIONS_DIR, url)
    engine = make_engine(url)
    async with session_factory(engine)() as session:
        store = EventStore(session)
        for index in range(count):
            await store.append(
                MeasurementRecorded(
                    catalogue_id="mini-dti",
                    catalogue_version="1.0",
                    period=2024,
                    unit_id=f"unit-{index % 63}",
                    indicator="3.1",
                    inputs={"a": str(index % 1000), "b": "1000"},
                    submitted_by="bench",
                )
            )
        await session.commit()
    await engine.dispose()  # checkpoints the WAL: the file alone is the database


async def measure(name: str, factory: RelayFactory, database: Path, work: Path, count: int) -> float:
    copy = work / f"{name}.db"
    shutil.copyfile(database, copy)
    port = embedded.free_port()
    server = embedded.start_nats(port, work / f"nats-{name}")
    nats_url = f"nats://127.0.0.1:{port}"
    engine = make_engine(f"sqlite+aiosqlite:///{copy}")
    try:
        relay = factory(session_factory(engine), nats_url)
        relay.nats = await nats.connect(nats_url)
        await streams.ensure_stream(relay.nats.jetstream())
        started = time.perf_counter()
        published = 0
        while moved := await relay.publish_pending():
            published += moved
        elapsed = time.perf_counter() - started
        info = await relay.nats.jetstream().stream_info(streams.STREAM_NAME)
        assert published == count == info.state.messages, (published, count, info.state.messages)
        await relay.stop()
    finally:
        await engine.dispose()
        embedded.stop(server)
    return count / elapsed


def load_relay(path: Path) -> RelayFactory:
    spec = importlib.util.spec_from_file_location("compared_outbox_relay", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OutboxRelay  # type: ignore[no-any-return]


async def run(count: int, compare: Path | None) -> None:
    variants: list[tuple[str, RelayFactory]] = []
    if compare is not None:
        variants.append((f"compared: {compare.name}", load_relay(compare)))
    variants += [
        ("batched, 1 in flight", lambda sessions, url: OutboxRelay(sessions, url, max_in_flight=1)),
        ("batched, 64 in flight", lambda sessions, url: OutboxRelay(sessions, url, max_in_flight=64)),
        ("batched, 500 in flight (default)", OutboxRelay),
        ("batch 2000, 2000 in flight", lambda s, url: OutboxRelay(s, url, batch=2000, max_in_flight=2000)),
    ]
    with tempfile.TemporaryDirectory(prefix="kpi-relay-bench-") as directory:
        work = Path(directory)
        database = work / "events.db"
        print(f"building an outbox of {count} events ...", flush=True)
        await build_database(database, count)
        print(f"{'relay':<40} {'events/s':>10}")
        for index, (name, factory) in enumerate(variants):
            rate = await measure(f"run{index}", factory, database, work, count)
            print(f"{name:<40} {rate:>10,.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--compare", type=Path, help="another outbox_relay.py to measure beside this one")
    arguments = parser.parse_args()
    asyncio.run(run(arguments.events, arguments.compare))


if __name__ == "__main__":
    main()
