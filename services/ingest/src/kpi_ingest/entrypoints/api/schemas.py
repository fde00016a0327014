"""HTTP request and response bodies of the ingest API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kpi_core.events import Evidence, Stage
from kpi_ingest.config import SET_MAX_ROWS

InputValue = Decimal | bool | str


class MeasurementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    catalogue_id: str = Field(min_length=1, max_length=100, examples=["vn-dti-province"])
    catalogue_version: str = Field(min_length=1, max_length=50, examples=["1.0"])
    period: int = Field(ge=2000, le=2100, description="The year measured", examples=[2024])
    unit_id: str = Field(min_length=1, max_length=100, examples=["gia-lai"])
    indicator: str = Field(min_length=1, max_length=50, examples=["3.1"])
    stage: Stage = "self_assessment"
    inputs: dict[str, InputValue] = Field(default_factory=dict, description="Named inputs of the indicator's formula")
    not_applicable_reason: str | None = Field(default=None, min_length=3, max_length=2000)
    evidence: list[Evidence] = Field(default_factory=list, max_length=50)
    responds_to: str | None = Field(default=None, description="The evidence request this submission answers")


class MeasurementAccepted(BaseModel):
    event_id: str
    sequence: int
    recorded_at: str
    subject: str
    replayed: bool


class CatalogueSummary(BaseModel):
    id: str
    version: str
    content_sha256: str
    title_vi: str | None = None
    title_en: str | None = None
    kind: str | None = None
    nodes: int | None = None


class CatalogueIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    version: str

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class MeasurementSetRowIn(BaseModel):
    """One self-assessment of a set: a unit's inputs for one component (the set gives the scope)."""

    model_config = ConfigDict(extra="forbid")

    unit_id: str = Field(min_length=1, max_length=100, examples=["quan-1"])
    indicator: str = Field(min_length=1, max_length=50, examples=["1.1"])
    inputs: dict[str, InputValue] = Field(default_factory=dict)
    not_applicable_reason: str | None = Field(default=None, min_length=3, max_length=2000)
    evidence: list[Evidence] = Field(default_factory=list, max_length=50)


class MeasurementSetIn(BaseModel):
    """Many self-assessments of one catalogue version and period, for one or many units."""

    model_config = ConfigDict(extra="forbid")

    catalogue_id: str = Field(min_length=1, max_length=100, examples=["hcmc-dti-districts"])
    catalogue_version: str = Field(min_length=1, max_length=50, examples=["1.0"])
    period: int = Field(ge=2000, le=2100, examples=[2024])
    rows: list[MeasurementSetRowIn] = Field(min_length=1, max_length=SET_MAX_ROWS)
