"""The progress line of rebuild and sync: what it says, and how often it writes off a terminal."""

from __future__ import annotations

import io

import pytest

from kpi_common import progress
from kpi_common.progress import ProgressLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_line_is_rewritten_in_place_and_ended_once() -> None:
    out = Terminal()
    line = ProgressLine(out=out)
    line.show(10, 100)
    line.show(20, 100)
    line.end()
    written = out.getvalue()
    assert written.count("\r") == 2
    assert "10/100 events" in written and "20/100 events" in written
    assert written.endswith("\n") and written.count("\n") == 1


def test_it_gives_the_rate_and_the_time_left_from_what_was_done_since_it_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter([100.0, 104.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    line = ProgressLine(start_position=1_000)
    assert line.text(3_000, 5_000) == "3000/5000 events, 500/s, 4 s left"


def test_at_the_head_it_says_so_and_never_divides_by_a_zero_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress.time, "monotonic", lambda: 7.0)
    line = ProgressLine(start_position=50)
    assert line.text(50, 50).endswith("at the head")
    assert line.text(50, 60).endswith("time left unknown")


def test_off_a_terminal_it_writes_whole_lines_seldom_and_when_it_reaches_the_head(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    line = ProgressLine(out=out)
    line.show(1, 100)  # the first line
    now[0] = 1.0
    line.show(2, 100)  # too soon
    now[0] = 2.0
    line.show(100, 100)  # the head reached
    now[0] = 3.0
    line.show(100, 100)  # still there: nothing new
    now[0] = 3.0 + progress.QUIET_SECONDS
    line.show(100, 101)  # a while later
    line.end()
    lines = out.getvalue().splitlines()
    assert [entry.split(" ")[0] for entry in lines] == ["1/100", "100/100", "100/101"]
    assert "\r" not in out.getvalue()
