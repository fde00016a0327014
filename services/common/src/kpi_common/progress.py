"""The progress line of a long CLI job (`kpi-ledger rebuild`, `kpi-ledger sync`): events done of the
stream's head, the rate, the time left, on standard error.

On a terminal the line is rewritten in place every time it is shown; elsewhere (a log file, a
service manager's journal) a whole line is written at most every `QUIET_SECONDS`, and whenever the
job reaches the head, so a follower that runs for days does not fill its log with it."""

from __future__ import annotations

import sys
import time
from typing import TextIO

QUIET_SECONDS = 30.0


class ProgressLine:
    def __init__(self, start_position: int = 0, out: TextIO | None = None) -> None:
        self._out = out if out is not None else sys.stderr
        self._start_position, self._started = start_position, time.monotonic()
        self._in_place = self._out.isatty()
        self._last_written = float("-inf")
        self._was_at_head = False
        self._pending_newline = False

    def text(self, position: int, head: int) -> str:
        elapsed = time.monotonic() - self._started
        rate = (position - self._start_position) / elapsed if elapsed > 0 else 0.0
        if position >= head:
            left = "at the head"
        elif rate > 0:
            left = f"{(head - position) / rate:,.0f} s left"
        else:
            left = "time left unknown"
        return f"{position}/{head} events, {rate:,.0f}/s, {left}"

    def show(self, position: int, head: int) -> None:
        at_head = position >= head
        now = time.monotonic()
        if self._in_place:
            self._out.write(f"\r{self.text(position, head)}   ")
            self._pending_newline = True
        elif (at_head and not self._was_at_head) or now - self._last_written >= QUIET_SECONDS:
            self._out.write(self.text(position, head) + "\n")
            self._last_written = now
        self._was_at_head = at_head
        self._out.flush()

    def end(self) -> None:
        """The job is over: the line in place is left as it is and the cursor moves on."""
        if self._pending_newline:
            self._out.write("\n")
            self._out.flush()
            self._pending_newline = False
