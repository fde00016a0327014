"""POST /v1/measurement-sets: many self-assessments in one request (JSON, or a CSV or XLSX file)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from kpi_common.access import ReporterKey, require_scope
from kpi_common.auth import ApiKey
from kpi_common.collector import fewer_collections
from kpi_core.measurement_sets import ImportSet, RowError, SetRow, SetScope
from kpi_core.measurements import FieldError
from kpi_ingest.bootstrap import Ingest
from kpi_ingest.entrypoints.api.contracts import MeasurementSetSummary
from kpi_ingest.entrypoints.api.deps import IdempotencyKeyDep, IngestDep
from kpi_ingest.entrypoints.api.schemas import MeasurementSetIn
from kpi_ingest.entrypoints.api.set_bodies import (
    SpooledBody,
    file_rows,
    file_scope,
    is_json_body,
    json_rows,
    json_set,
    spooled_body,
)
from kpi_ingest.service_layer.errors import UnknownCatalogue
from kpi_ingest.service_layer.measurement_sets import import_measurement_set

router = APIRouter(prefix="/v1", tags=["measurement sets"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _request_body() -> dict[str, Any]:
    schema = MeasurementSetIn.model_json_schema(ref_template="#/components/schemas/{model}")
    rows = schema.pop("$defs", {}).get("MeasurementSetRowIn", {})
    schema["properties"]["rows"]["items"] = rows
    file = {"type": "string", "format": "binary"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "text/csv": {"schema": {"type": "string"}},
                XLSX: {"schema": file},
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": {"file": file}, "required": ["file"]}
                },
            },
        }
    }


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": MeasurementSetSummary,
        "description": "Nothing stored: a dry run, a set that changes nothing, or a replay of the same Idempotency-Key",
    },
    413: {"description": "More bytes or rows than KPI_INGEST_SET_MAX_BYTES or KPI_INGEST_SET_MAX_ROWS"},
}
DryRun = Annotated[bool, Query(alias="dryRun", description="Validate and report; store nothing")]
ModeQuery = Annotated[
    Literal["atomic", "partial"], Query(description="atomic: all rows or none (422); partial: the valid rows")
]


@router.post(
    "/measurement-sets",
    status_code=201,
    response_model=MeasurementSetSummary,
    responses=RESPONSES,
    openapi_extra=_request_body(),
)
async def post_measurement_set(
    request: Request,
    key: ReporterKey,
    response: Response,
    ingest: IngestDep,
    idempotency_key: IdempotencyKeyDep,
    dry_run: DryRun = False,
    mode: ModeQuery = "atomic",
    catalogue_id: Annotated[str | None, Query(max_length=100, description="For a file without the column")] = None,
    catalogue_version: Annotated[str | None, Query(max_length=50)] = None,
    period: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> MeasurementSetSummary:
    """Import many self-assessments of one catalogue version and period; answers the import summary."""
    with fewer_collections():  # a set allocates some thirty objects a row, most alive until stored
        body = await spooled_body(request)
        try:
            query = {"catalogue_id": catalogue_id, "catalogue_version": catalogue_version, "period": period}
            scope, rows = await _rows(ingest, body, query)
            peer_group = await ingest.peer_group_of(scope.catalogue_id, scope.catalogue_version)
            _require_units(ingest, key, rows, peer_group)
            command = ImportSet(
                scope=scope,
                rows=rows,
                content_sha256=body.sha256,
                idempotency_key=idempotency_key,
                submitted_by=key.id,
                mode=mode,
                dry_run=dry_run,
            )
            imported = await import_measurement_set(command, ingest.uow(), ingest.catalogues, ingest.units)
        finally:
            body.file.close()
    if imported.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    if not imported.stored or imported.replayed:
        response.status_code = 200
    return MeasurementSetSummary.model_validate({**imported.summary, "replayed": imported.replayed})


async def _rows(ingest: Ingest, body: SpooledBody, query: dict[str, Any]) -> tuple[SetScope, list[SetRow | RowError]]:
    max_rows = ingest.settings.set_max_rows
    if is_json_body(body):
        document = await run_in_threadpool(json_set, body)  # parsing is CPU work: off the event loop
        scope = SetScope(document.catalogue_id, document.catalogue_version, document.period)
        return scope, json_rows(document, max_rows)
    scope = file_scope(body, query)
    async with ingest.uow() as uow:
        catalogue = await ingest.catalogues.get(uow, scope.catalogue_id, scope.catalogue_version)
    if catalogue is None:
        raise UnknownCatalogue(
            f"catalogue {scope.catalogue_id} version {scope.catalogue_version} is not registered",
            [FieldError("catalogue_id", "unknown catalogue version")],
        )
    return scope, await run_in_threadpool(file_rows, body, catalogue, scope, max_rows)


def _require_units(ingest: Ingest, key: ApiKey, rows: list[SetRow | RowError], peer_group: str | None) -> None:
    """Every unit the set names is within the key's scope, as for a single measurement (else 403)."""
    if peer_group is None:
        return  # an unknown catalogue: the handler answers 422 naming it
    for unit in sorted({row.unit_id for row in rows if isinstance(row, SetRow)}):
        require_scope(key, peer_group, unit, role_used="reporter")
