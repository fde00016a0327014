"""The fault suite in `make test` (issue 15): scoring killed with SIGKILL at ten seeded random moments
under load from four retrying clients, restarted on the same data each time (the rounds share one
running system). Nothing acknowledged is lost or doubled, no consumer is left behind or gives up on
an event, and the ranking equals a computation from scratch. A file of its own, so that the three
kills run on different test workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.faults import KILL_POSTS, KILL_SEEDS, assert_nothing_lost_doubled_or_stuck

pytestmark = pytest.mark.e2e


def test_kill_9_of_scoring_at_ten_random_moments_loses_doubles_and_stalls_nothing(tmp_path: Path) -> None:
    assert_nothing_lost_doubled_or_stuck(tmp_path, "kill -9 scoring", seeds=KILL_SEEDS, posts=KILL_POSTS)
