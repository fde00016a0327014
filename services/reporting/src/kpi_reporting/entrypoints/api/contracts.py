"""What the reporting endpoints answer: the response models OpenAPI shows.

Points are strings (exact decimals as the catalogue rounds them), never floats. The routes use
`response_model_exclude_unset`, so a field a view does not set is absent, not null; models whose
shape may grow allow extra fields, so that nothing a view returns is filtered away.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Points = str | None


class PillarHeader(BaseModel):
    code: str
    name_vi: str
    name_en: str | None
    max_points: str


class UnitNames(BaseModel):
    model_config = ConfigDict(extra="allow")

    unit_id: str
    unit_name_vi: str | None = None
    unit_name_en: str | None = None
    unit_code: str | None = None


class RankedUnit(UnitNames):
    rank: int
    rank_label: str = Field(description='"rank/N"; ties share a rank')
    status: str | None = Field(default=None, description="reported or missing (computed rankings only)")
    total: Points
    pillars: dict[str, Points] = Field(description="Points per scored pillar")


class Ranking(BaseModel):
    """A ranking computed now (or `as_of` a past moment) from the self-assessed or verified figures."""

    model_config = ConfigDict(extra="allow")

    catalogue: str
    version: str
    period: int
    stage: Literal["self_assessment", "verification"]
    pillar: str | None = Field(description="Ranked by this pillar's points instead of the total")
    as_of_sequence: int
    max_points: Points
    pillars: list[PillarHeader]
    rankings: list[RankedUnit]


class PublishedRanking(BaseModel):
    """A ranking exactly as an approver published (froze) it, with what restated it, if anything."""

    model_config = ConfigDict(extra="allow")

    catalogue: str
    version: str
    period: int
    stage: Literal["published"]
    published_stage: str
    pillar: str | None
    publication_id: str
    published_at: str
    published_by: str
    as_of_sequence: int
    replaces: str | None
    restated_by: str | None
    reason: str | None
    moved: list[dict[str, Any]]
    incomplete_reason: str | None
    missing: list[dict[str, Any]]
    rankings: list[RankedUnit]


AnyRanking = Annotated[Ranking | PublishedRanking, Field(discriminator="stage")]


class Verification(BaseModel):
    model_config = ConfigDict(extra="allow")

    decision: str | None
    reason: str | None
    verified_by: str
    verified_at: str
    self_assessment_event_id: str | None
    event_id: str


class CardNode(BaseModel):
    """A pillar, group or component of a scorecard; fields a node has no data for are absent."""

    model_config = ConfigDict(extra="allow")

    code: str
    name_vi: str
    name_en: str | None
    max_points: Points
    scored: bool
    lead_agency: str | None
    cooperating_agencies: list[str]
    deadline: str | None
    points: Points
    status: str | None
    value: str | bool | None = None
    points_missing: Points = None
    inputs: dict[str, str | bool] | None = None
    formula: str | None = None
    event_id: str | None = None
    verification: Verification | None = None
    self_assessed_points: Points = None
    verified_points: Points = None
    gap: Points = None
    previous_period_points: Points = None
    change: Points = None
    children: list[CardNode] | None = None


class Scorecard(UnitNames):
    """A unit's scorecard; `publication_id` when it is read as published."""

    catalogue: str
    version: str
    period: int
    stage: str
    as_of_sequence: int
    total: Points
    max_points: Points
    rank: int | None
    rank_label: str | None
    previous_period_total: Points
    general_information: dict[str, Any]
    pillars: list[CardNode]
    publication_id: str | None = None


class TrendLine(UnitNames):
    """One unit standing for the line in a period (`relation`: itself, a predecessor, a successor)."""

    relation: str
    status: str | None = None
    rank: int | None = None
    rank_label: str | None = None
    total: Points = None
    pillars: dict[str, Points] | None = None


class TrendPoint(BaseModel):
    model_config = ConfigDict(extra="allow")

    period: int
    units_ranked: int
    peer_median: Points
    peer_best: Points
    lines: list[TrendLine]


class NodeTrendLine(UnitNames):
    """One unit standing for the line in a period, in the node followed: its own points and rank."""

    relation: str
    points: Points
    value: Points = Field(description="The component's measured value (a ratio, a count), where it has one")
    status: str | None = Field(description="The component's status: scored, missing or not_applicable")
    rank: int | None = Field(description="Its rank in the peer group for this node in the period")
    rank_label: str | None = Field(description='"rank/N"; ties share a rank')


class NodeTrendPoint(BaseModel):
    model_config = ConfigDict(extra="allow")

    period: int
    units_ranked: int
    peer_median: Points
    peer_best: Points
    lines: list[NodeTrendLine]


class NodeTrend(BaseModel):
    """The node asked for (`indicator`: a component, a pillar, or `_T` the total) over the same periods."""

    model_config = ConfigDict(extra="allow")

    code: str
    name_vi: str
    name_en: str | None
    max_points: Points
    periods: list[NodeTrendPoint]


class Trend(BaseModel):
    model_config = ConfigDict(extra="allow")

    catalogue: str
    version: str
    stage: str
    unit_id: str
    unit_name_vi: str
    unit_name_en: str | None
    peer_group: str
    periods: list[TrendPoint]
    indicator: NodeTrend | None = None


class HistoryEntry(BaseModel):
    """An event about a unit: a measurement (stage, inputs, decision...) or another workflow event (`data`)."""

    model_config = ConfigDict(extra="allow")

    sequence: int
    event_id: str
    type: str
    recorded_at: str
    by: str
    unit_id: str | None
    indicator: str | None
    stage: str | None = None
    inputs: dict[str, Any] | None = None
    not_applicable_reason: str | None = None
    decision: str | None = None
    reason: str | None = None
    responds_to: str | None = None
    evidence_count: int | None = Field(
        default=None, description="A measurement's evidence documents (null: projected before they were counted)"
    )
    data: dict[str, Any] | None = None


class RankAt(BaseModel):
    rank_label: str
    total: Points


class RankMove(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    unit_id: str
    from_: RankAt | None = Field(alias="from")
    to: RankAt | None


class ScoreMove(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    unit_id: str
    code: str
    from_: Points = Field(alias="from")
    to: Points


class Diff(BaseModel):
    """What changed between two moments: ranks, every score that moved, and the events in between."""

    model_config = ConfigDict(extra="allow")

    from_sequence: int
    to_sequence: int
    ranks: list[RankMove]
    scores: list[ScoreMove]
    events: list[HistoryEntry]
