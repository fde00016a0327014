"""What the scoring endpoints answer: the response models OpenAPI shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Score(BaseModel):
    """One score of a unit (an indicator, a pillar or group, or the total "*") with its explanation."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description='A node of the catalogue, or "*" for the total')
    status: str
    points: str | None = Field(description="The points as shown (rounded as the catalogue says)")
    points_exact: str | None = Field(description="The exact points, as a fraction")
    max_points: str | None
    explanation: dict[str, Any] = Field(description="Rule, inputs, source event, formula with the numbers substituted")
    as_of_sequence: int


class ScoreChange(BaseModel):
    """A score an event changed, from what to what."""

    model_config = ConfigDict(extra="allow")

    catalogue: str
    version: str
    period: int
    stage: str
    unit_id: str
    code: str
    points_before: str | None
    points_after: str | None
