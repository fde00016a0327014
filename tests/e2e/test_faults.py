"""The fault suite, short (issue 15): one seeded round of each fault under load from four retrying
clients — kill -9 of ingest, of scoring, of reporting, NATS stopped for 3 s, PostgreSQL stopped for
3 s (the system on PostgreSQL), the node leading the event stream of a three-node NATS cluster killed
(the streams at three replicas). Nothing acknowledged is lost or doubled, no consumer is left behind
or gives up on an event, and the ranking equals a computation from scratch. `make faults` runs ten
seeds of each and prints the table in the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.faults import FAULTS, POSTGRES_RESTART, run_faults, table

pytestmark = pytest.mark.e2e
CASES = [pytest.param(fault, marks=pytest.mark.postgres) if fault == POSTGRES_RESTART else fault for fault in FAULTS]


@pytest.mark.parametrize("fault", CASES)
def test_nothing_is_lost_doubled_or_stuck(tmp_path: Path, fault: str) -> None:
    rounds = run_faults(tmp_path, seeds=1, posts=80, faults=(fault,))
    print(table(rounds))
    for round in rounds:
        assert round.acknowledged >= 80
        assert round.ok, round  # nothing lost, doubled, stalled, dead-lettered; the ranking as from scratch
