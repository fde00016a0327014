"""Why the rules refuse a command: one exception for every decider of the core.

The kind says what the caller must change (each service maps it to its status and problem type);
the detail is one line; the errors name every field the refusal is about.
"""

from __future__ import annotations

from typing import Literal

from kpi_core.measurements import FieldError

RefusalKind = Literal[
    "invalid",
    "conflict",
    "not_found",
    "incomplete",
    "self_approval",
    "not_superseded",
    "forbidden",
    "not_in_peer_group",
    "period_closed",
]


class Refused(Exception):
    """A command the rules refuse: of what kind (what the caller must change), why, and every field it is about."""

    def __init__(self, kind: RefusalKind, detail: str, errors: list[FieldError]) -> None:
        super().__init__(detail)
        self.kind: RefusalKind = kind
        self.detail = detail
        self.errors = errors
