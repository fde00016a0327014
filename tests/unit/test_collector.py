"""The collector's pace during bulk work (rebuild, measurement sets) is restored when it ends."""

from __future__ import annotations

import gc

from kpi_common import collector


def test_overlapping_bulk_work_restores_the_collector_when_the_last_one_ends() -> None:
    before = gc.get_threshold()
    with collector.fewer_collections():
        assert gc.get_threshold()[0] == collector.BULK_THRESHOLD and gc.get_freeze_count() > 0
        with collector.fewer_collections():
            pass
        assert gc.get_threshold()[0] == collector.BULK_THRESHOLD  # the first is still running
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_the_pace_is_restored_when_the_work_fails() -> None:
    before = gc.get_threshold()
    try:
        with collector.fewer_collections():
            raise RuntimeError("a set refused halfway")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
