"""Catalogue versions: list, whole tree, one indicator, and registration by an admin."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from kpi_common.access import AdminKey
from kpi_common.http_cache import conditional
from kpi_common.problems import Problem
from kpi_core.catalogue import Catalogue
from kpi_core.commands import RegisterCatalogueVersion
from kpi_ingest.entrypoints.api.contracts import CatalogueDocument, IndicatorNode, Registered
from kpi_ingest.entrypoints.api.deps import IngestDep
from kpi_ingest.entrypoints.api.schemas import CatalogueIn, CatalogueSummary
from kpi_ingest.service_layer import handlers

router = APIRouter(prefix="/v1/catalogues", tags=["catalogues"])


async def _catalogue(ingest: IngestDep, catalogue_id: str, version: str) -> Catalogue:
    async with ingest.uow() as uow:
        catalogue = await ingest.catalogues.get(uow, catalogue_id, version)
    if catalogue is None:
        raise Problem(404, "Not found", f"catalogue {catalogue_id} version {version} is not registered")
    return catalogue


@router.get("", response_model=list[CatalogueSummary])
async def list_catalogues(ingest: IngestDep) -> list[CatalogueSummary]:
    """Every registered catalogue version."""
    async with ingest.uow() as uow:
        versions = await uow.events.catalogue_versions()
    summaries = []
    for catalogue_id, version, content_sha256 in versions:
        catalogue = await _catalogue(ingest, catalogue_id, version)
        summaries.append(
            CatalogueSummary(
                id=catalogue_id,
                version=version,
                content_sha256=content_sha256,
                title_vi=catalogue.title_vi,
                title_en=catalogue.title_en,
                kind=catalogue.kind,
                nodes=len(catalogue.nodes),
            )
        )
    return summaries


@router.get("/{catalogue_id}/versions/{version}", response_model=CatalogueDocument, response_model_exclude_unset=True)
async def get_catalogue_version(catalogue_id: str, version: str, ingest: IngestDep, request: Request) -> Response:
    """The whole tree of one catalogue version, as registered (immutable: ETag, If-None-Match)."""
    return conditional(request, (await _catalogue(ingest, catalogue_id, version)).document())


@router.get(
    "/{catalogue_id}/versions/{version}/indicators/{code}",
    response_model=IndicatorNode,
    response_model_exclude_unset=True,
)
async def get_indicator(catalogue_id: str, version: str, code: str, ingest: IngestDep, request: Request) -> Response:
    """One node of a catalogue version, with its rule, inputs and method text (immutable: ETag)."""
    node = (await _catalogue(ingest, catalogue_id, version)).node(code)
    if node is None:
        raise Problem(404, "Not found", f"{catalogue_id}@{version} has no indicator {code}")
    return conditional(request, node.model_dump(mode="json", exclude_none=True))


@router.post("", status_code=201, response_model=Registered)
async def register_catalogue(key: AdminKey, body: CatalogueIn, ingest: IngestDep) -> dict[str, Any]:
    """Register a new catalogue version (admin key); it is validated and becomes an event."""
    command = RegisterCatalogueVersion(document=body.document(), registered_by=key.id)
    stored = await handlers.register_catalogue_version(command, ingest.uow(), ingest.catalogues)
    return {"id": body.id, "version": body.version, "event_id": stored.envelope.id, "sequence": stored.sequence}
