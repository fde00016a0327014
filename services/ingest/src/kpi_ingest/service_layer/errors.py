"""What the ingest handlers refuse, each error naming the field it is about."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from kpi_core.measurements import FieldError
from kpi_core.refusals import RefusalKind, Refused


class IngestError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class UnknownCatalogue(IngestError):
    status, title = 422, "Unknown catalogue version"


class InvalidMeasurement(IngestError):
    status, title = 422, "Invalid measurement"


class InvalidCatalogue(IngestError):
    status, title = 422, "Invalid catalogue"


class CatalogueVersionExists(IngestError):
    status, title = 409, "Catalogue version already registered"


class IdempotencyConflict(IngestError):
    status, title = 409, "Idempotency key reused with a different request"


class Forbidden(IngestError):
    status, title = 403, "Forbidden"


class PeriodClosedError(IngestError):
    status, title = 409, "Period closed"


class NotFound(IngestError):
    status, title = 404, "Not found"


class Conflict(IngestError):
    status, title = 409, "Conflict"


class InvalidUnitList(IngestError):
    status, title = 422, "Invalid unit list"


class NotInPeerGroup(IngestError):
    status, title = 422, "Unit not assessed in this catalogue and period"


class AdjustmentNotSuperseded(IngestError):
    status, title = 409, "Verification would replace an adjustment"


class InvalidKey(IngestError):
    status, title = 422, "Invalid API key request"


class SelfApproval(IngestError):
    status, title = 403, "Four eyes: who adjusted may not publish"


class RankingIncomplete(IngestError):
    status, title = 409, "Ranking incomplete"


def version_taken(label: str, same_content: bool, error: type[IngestError]) -> IngestError:
    """A registered version (of a catalogue, of a unit list) never changes: a new content is a new version."""
    return error(
        f"{label} is already registered" + ("" if same_content else " with different content; register a new version"),
        [FieldError("version", "already registered")],
    )


REFUSALS: dict[RefusalKind, type[IngestError]] = {
    "invalid": InvalidMeasurement,
    "conflict": Conflict,
    "not_found": NotFound,
    "incomplete": RankingIncomplete,
    "self_approval": SelfApproval,
    "not_superseded": AdjustmentNotSuperseded,
    "forbidden": Forbidden,
    "not_in_peer_group": NotInPeerGroup,
    "period_closed": PeriodClosedError,
}


def ingest_error(refused: Refused) -> IngestError:
    """A refusal of the pure core as the ingest error of its kind: the same status and problem type."""
    return REFUSALS[refused.kind](refused.detail, refused.errors)


@contextmanager
def refusals_as_ingest_errors() -> Iterator[None]:
    """Around a decider's call: what it refuses is raised as the ingest error of its kind."""
    try:
        yield
    except Refused as refused:
        raise ingest_error(refused) from None
