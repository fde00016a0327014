"""The published JSON Schemas: the catalogue format and every event type."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from kpi_common.problems import Problem
from kpi_core.schemas import all_schemas

router = APIRouter(prefix="/v1/schemas", tags=["schemas"])


@router.get("", response_model=list[str])
async def list_schemas() -> list[str]:
    """The names of every published schema."""
    return sorted(all_schemas())


@router.get("/{name}", response_model=dict[str, Any])
async def get_schema(name: str) -> dict[str, Any]:
    """One JSON Schema (draft 2020-12): `catalogue` or an event type such as vn.kpi.measurement.recorded.v1."""
    schemas = all_schemas()
    if name not in schemas:
        raise Problem(404, "Not found", f"no schema named {name}; known: {', '.join(sorted(schemas))}")
    return schemas[name]
