"""The scope every score and report is asked for: catalogue version, period and stage."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query

CatalogueQuery = Annotated[str, Query(examples=["vn-dti-province"])]
VersionQuery = Annotated[str, Query(examples=["1.0"])]
StageQuery = Annotated[
    str,
    Query(pattern="^(self_assessment|verification|published)$", description="published: as an approver froze it"),
]


def scope_params(
    catalogue: CatalogueQuery,
    version: VersionQuery,
    period: Annotated[int, Query(ge=2000, le=2100)],
    stage: StageQuery = "self_assessment",
) -> dict[str, Any]:
    return {"catalogue_id": catalogue, "version": version, "period": period, "stage": stage}


ScopeDep = Annotated[dict[str, Any], Depends(scope_params)]
