"""The spreadsheet template of a catalogue version: one row per scored component, filled back and
imported as-is with POST /v1/measurement-sets. A unit given is always a registered unit id (what the
template writes into every row of a file served from this host)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from kpi_common.problems import Problem
from kpi_core.assessment import assessed_unit_error
from kpi_core.catalogue import Catalogue
from kpi_core.set_files import template_columns, template_rows
from kpi_ingest.adapters.set_files import XLSX_MEDIA_TYPE, template_csv, template_xlsx
from kpi_ingest.entrypoints.api.deps import IngestDep

router = APIRouter(prefix="/v1/catalogues", tags=["measurement sets"])
UnitQuery = Annotated[str | None, Query(max_length=100, description="Fill in this unit's id on every row")]
PeriodQuery = Annotated[int | None, Query(ge=2000, le=2100, description="Fill in the year measured")]
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "UTF-8 CSV with a byte-order mark"}
}
XLSX_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        "description": "An XLSX workbook: drop-down lists of the Vietnamese labels on category and yes/no cells",
    }
}


class CsvFile(Response):
    media_type = "text/csv"


class XlsxFile(Response):
    media_type = XLSX_MEDIA_TYPE


async def _template(
    ingest: IngestDep, catalogue_id: str, version: str, unit: str | None, period: int | None
) -> tuple[Catalogue, list[dict[str, Any]], str]:
    async with ingest.uow() as uow:
        catalogue = await ingest.catalogues.get(uow, catalogue_id, version)
        registry = await ingest.units.get(uow)
    if catalogue is None:
        raise Problem(404, "Not found", f"catalogue {catalogue_id} version {version} is not registered")
    if unit and registry.unit(unit) is None:
        raise Problem(
            422,
            "Unknown unit",
            f"{unit!r} is not the id of a registered unit",
            [{"field": "unit", "message": "not a registered unit id"}],
        )
    if unit and period is not None:
        error = assessed_unit_error(registry, catalogue, period, unit)
        if error is not None:
            raise Problem(
                422,
                "Unit not assessed in this catalogue and period",
                error.message,
                [{"field": "unit", "message": error.message}],
            )
    rows = list(template_rows(catalogue, period, [unit or ""]))
    parts = ("template", catalogue.id, catalogue.version, unit, str(period or ""))
    name = re.sub(r"[^A-Za-z0-9._-]", "_", "-".join(part for part in parts if part))
    return catalogue, rows, name


@router.get("/{catalogue_id}/versions/{version}/template.csv", response_class=CsvFile, responses=CSV_RESPONSE)
async def get_template_csv(
    catalogue_id: str, version: str, ingest: IngestDep, unit: UnitQuery = None, period: PeriodQuery = None
) -> Response:
    """A CSV template of the version's scored components (code, Vietnamese name, inputs guide, evidence)."""
    catalogue, rows, name = await _template(ingest, catalogue_id, version, unit, period)
    return Response(
        template_csv(template_columns(catalogue), rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/{catalogue_id}/versions/{version}/template.xlsx", response_class=XlsxFile, responses=XLSX_RESPONSE)
async def get_template_xlsx(
    catalogue_id: str, version: str, ingest: IngestDep, unit: UnitQuery = None, period: PeriodQuery = None
) -> Response:
    """An XLSX template of the version's scored components, with drop-downs of the Vietnamese labels."""
    catalogue, rows, name = await _template(ingest, catalogue_id, version, unit, period)
    return Response(
        template_xlsx(catalogue, template_columns(catalogue), rows),
        media_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
    )
