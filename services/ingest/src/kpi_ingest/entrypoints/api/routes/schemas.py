"""The published JSON Schemas: the catalogue format and every event type."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from kpi_common.http_cache import conditional
from kpi_common.problems import Problem
from kpi_core.schemas import all_schemas

router = APIRouter(prefix="/v1/schemas", tags=["schemas"])


@router.get("", response_model=list[str])
async def list_schemas() -> list[str]:
    """The names of every published schema."""
    return sorted(all_schemas())


@router.get("/{name}", response_model=dict[str, Any])
async def get_schema(name: str, request: Request) -> Response:
    """One JSON Schema (draft 2020-12): `catalogue` or an event type such as vn.kpi.measurement.recorded.v1
    (versioned by name, so it never changes: ETag, If-None-Match)."""
    schemas = all_schemas()
    if name not in schemas:
        raise Problem(404, "Not found", f"no schema named {name}; known: {', '.join(sorted(schemas))}")
    return conditional(request, schemas[name])
