"""Composition root of the scoring service."""

from __future__ import annotations

from kpi_common.catalogue_store import CatalogueStore
from kpi_common.projection_service import ProjectionService, build_projection_service
from kpi_scoring.adapters.orm import catalogues, consumer_positions, dead_letters
from kpi_scoring.config import Settings
from kpi_scoring.service_layer.projection import ScoreProjection


def build(settings: Settings) -> ProjectionService:
    return build_projection_service(
        database_url=settings.database_url,
        nats_url=settings.nats_url,
        consumer=settings.consumer_name,
        replicas=settings.stream_replicas,
        positions=consumer_positions,
        dead_letters=dead_letters,
        apply=ScoreProjection(CatalogueStore(catalogues)).apply,
    )


def projection_service(settings: Settings) -> ProjectionService:
    """What `kpi-ledger rebuild scoring` replays."""
    return build(settings)
