"""The score stream's contracts: what the scoring service computed, as events of its own.

Scoring is the one place points are computed. After each batch of log events it applies, it
records what changed as `ScoresChanged` (every score line that moved, each with the log sequence
that moved it) and, for a publication, the ranking it froze at the publication's cut
(`ResultFrozen`). Reporting and national sync jobs read these; they never score.

`answers_through` is the promise that makes a past moment exact: every log event up to that
sequence is reflected in this score event and the ones before it on the score stream.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from kpi_core.events import RankedUnit, RankMove, Stage

SCORE_SOURCE = "/kpi-ledger/scoring"
TOTAL_CODE = "*"  # a unit's total, beside the catalogue's own codes


class PeerExtremes(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min: str
    max: str
    min_event_id: str | None = None
    max_event_id: str | None = None


class ScoreLine(BaseModel):
    """One score as it stands after the log event `sequence`: a leaf's points with how they were
    computed, a group's or pillar's sum, or the unit's total (`code` "*")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    catalogue_id: str
    catalogue_version: str
    period: int
    stage: Stage
    unit_id: str
    code: str
    sequence: int = Field(description="The log event whose application set this score")
    recorded_at: str = Field(description="When that log event was recorded (UTC)")
    status: str = Field(description="scored, missing or not_applicable for a leaf; sum for a group, pillar or total")
    points: str | None = Field(description="Exact points, a fraction such as 7/3 (display rounds half up to 0.01)")
    max_points: str | None = None
    value: str | None = Field(default=None, description="A leaf's measured value, rounded to 0.01")
    formula: str = Field(default="", description="A leaf's formula with the numbers substituted")
    inputs: dict[str, str | bool] = Field(default_factory=dict)
    event_id: str | None = Field(default=None, description="The measurement a leaf's score comes from")
    previous_period_event_id: str | None = None
    peer: PeerExtremes | None = None


class ScoresChanged(BaseModel):
    """The scores one applied batch of log events changed (possibly none: then it only moves `answers_through`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: ClassVar[str] = "vn.kpi.scores.changed.v1"

    answers_through: int = Field(description="Every log event up to this sequence is reflected so far")
    scores: tuple[ScoreLine, ...] = ()

    def subject(self) -> str:
        return f"through/{self.answers_through}"


class ResultFrozen(BaseModel):
    """The ranking a publication froze: scoring's scores just before the publication's log event
    (the cut `as_of_sequence`), over the peer group's units of the period."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: ClassVar[str] = "vn.kpi.result.frozen.v1"

    catalogue_id: str
    catalogue_version: str
    period: int
    stage: Stage
    publication_id: str
    publication_sequence: int = Field(description="The vn.kpi.result.published.v1 event that asked for it")
    as_of_sequence: int = Field(description="The cut: every log event up to here, and none after, is in the ranking")
    ranking: tuple[RankedUnit, ...]
    replaces: str | None = None
    moved: tuple[RankMove, ...] = ()
    answers_through: int

    def subject(self) -> str:
        return f"{self.catalogue_id}/{self.catalogue_version}/{self.period}/{self.publication_id}"


ScoreEvent = ScoresChanged | ResultFrozen
SCORE_EVENT_TYPES: dict[str, type[ScoresChanged] | type[ResultFrozen]] = {
    cls.type: cls for cls in (ScoresChanged, ResultFrozen)
}


def decode_score_event(type_: str, data: dict[str, object]) -> ScoreEvent | None:
    cls = SCORE_EVENT_TYPES.get(type_)
    return cls.model_validate(data) if cls is not None else None
