"""The fault suite, short (issue 15): one seeded round of each fault but the kills (ten seeds each,
tests/e2e/test_faults_kill_*.py) under load from four retrying clients — NATS stopped for 3 s,
PostgreSQL stopped for 3 s (the system on PostgreSQL), the node leading the event stream of a
three-node NATS cluster killed (the streams at three replicas), one event reaching the stream 12 s
after later ones. Nothing acknowledged is lost or doubled, no consumer is left behind or gives up
on an event, and the ranking equals a computation from scratch. `make faults` runs ten seeds of
each and prints the table in the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.faults import HELD_BACK, NATS_NODE_LOST, NATS_STOPPED, POSTGRES_RESTART
from tests.e2e.faults import assert_nothing_lost_doubled_or_stuck as check

pytestmark = pytest.mark.e2e
OTHER_FAULTS = (NATS_STOPPED, pytest.param(POSTGRES_RESTART, marks=pytest.mark.postgres), NATS_NODE_LOST, HELD_BACK)


@pytest.mark.parametrize("fault", OTHER_FAULTS)
def test_nothing_is_lost_doubled_or_stuck(tmp_path: Path, fault: str) -> None:
    check(tmp_path, fault, seeds=1, posts=80)
