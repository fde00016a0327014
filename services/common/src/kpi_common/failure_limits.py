"""Failed authentications counted per client address, for the 429 that slows a guessing client.

Apart from `kpi_common.access` (which imports FastAPI): a service's composition root builds one,
and a CLI job that builds a service without serving it (`kpi-ledger rebuild`) should not pay for
importing the HTTP stack.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class FailureLimiter:
    """Failed authentications per client address: past `limit` within `window` seconds, 429."""

    def __init__(self, limit: int = 20, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit, self._window, self._clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> int | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        now = self._clock()
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return math.ceil(failures[0] + self._window - now) if len(failures) >= self._limit else None

    def failed(self, client: str) -> None:
        if len(self._failures) > 100_000:  # bounded, whatever a flood of addresses does
            self._failures.clear()
        self._failures.setdefault(client, deque()).append(self._clock())
