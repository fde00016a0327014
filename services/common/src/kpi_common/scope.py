"""The scope every score and report is asked for: catalogue version, period and stage."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from kpi_core.scope import Scope

CatalogueQuery = Annotated[str, Query(examples=["vn-dti-province"])]
VersionQuery = Annotated[str, Query(examples=["1.0"])]
StageQuery = Annotated[
    str,
    Query(pattern="^(self_assessment|verification|published)$", description="published: as an approver froze it"),
]


async def scope_params(
    catalogue: CatalogueQuery,
    version: VersionQuery,
    period: Annotated[int, Query(ge=2000, le=2100)],
    stage: StageQuery = "self_assessment",
) -> Scope:
    return Scope(catalogue_id=catalogue, version=version, period=period, stage=stage)


ScopeDep = Annotated[Scope, Depends(scope_params)]
