"""The cyclic garbage collector's pace during bulk work: a rebuild's replay, a measurement set.

Bulk work allocates millions of short-lived objects beside a large heap that lives on (the app,
the catalogues, the inputs and scores in memory). At the collector's default pace they set off
collections that walk that heap over and over: a quarter of a replay's CPU, a fifth of a
10,000-row set's. While bulk work runs, what existed before it is left out of collections
(`gc.freeze`) and the youngest generation is collected every `BULK_THRESHOLD` allocations instead
of 700; reference counting frees everything else as always. The setting is process-wide, so it is
counted: overlapping bulk work (two sets at once) restores the pace when the last one ends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

BULK_THRESHOLD = 100_000  # allocations between collections of the youngest generation, during bulk work


class _Pace:
    def __init__(self) -> None:
        self.running = 0
        self.threshold = gc.get_threshold()

    @contextlib.contextmanager
    def fewer_collections(self) -> Iterator[None]:
        if self.running == 0:
            self.threshold = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(BULK_THRESHOLD, *self.threshold[1:])
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            if self.running == 0:
                gc.set_threshold(*self.threshold)
                gc.unfreeze()


fewer_collections = _Pace().fewer_collections
