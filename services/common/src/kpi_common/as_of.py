"""`as_of`: a past moment, given as an event sequence or a recorded time, for every read endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kpi_common.problems import Problem

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the form events carry; it sorts as text in time order
LARGEST_SEQUENCE = 2**62  # far beyond any log, and inside every database's 64-bit integer


@dataclass(frozen=True)
class AsOf:
    sequence: int | None = None
    recorded_at: str | None = None

    @classmethod
    def parse(cls, raw: str | None) -> AsOf | None:
        if raw is None:
            return None
        if raw.isascii() and raw.isdigit() and len(raw) <= 19:
            return cls(sequence=min(int(raw), LARGEST_SEQUENCE))  # beyond the head is the head
        try:
            if len(raw) > 40:
                raise ValueError("too long for a time")
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise Problem(
                422,
                "Invalid as_of",
                "as_of is an event sequence or an ISO 8601 time",
                [{"field": "as_of", "message": raw[:100]}],
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return cls(recorded_at=moment.astimezone(UTC).strftime(TIME_FORMAT))

    def condition(self, sequence_column: Any, recorded_at_column: Any) -> Any:
        """The SQL condition "at or before this moment" on a table with both columns."""
        if self.sequence is not None:
            return sequence_column <= self.sequence
        return recorded_at_column <= self.recorded_at
