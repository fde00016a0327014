"""Composition root of the scoring service."""

from __future__ import annotations

from dataclasses import dataclass

from kpi_common.access import FailureLimiter
from kpi_common.auth import KeyCache, KeyStore
from kpi_common.catalogue_store import CatalogueStore
from kpi_common.projection_service import ProjectionService, build_projection_service
from kpi_scoring.adapters.orm import api_keys, catalogues, consumer_positions, dead_letters
from kpi_scoring.config import Settings
from kpi_scoring.service_layer.projection import ScoreProjection


@dataclass
class Scoring:
    service: ProjectionService
    catalogues: CatalogueStore
    keys: KeyCache
    auth_failures: FailureLimiter


def build(settings: Settings) -> Scoring:
    store, keys = CatalogueStore(catalogues), KeyStore(api_keys)
    service = build_projection_service(
        database_url=settings.database_url,
        nats_url=settings.nats_url,
        consumer=settings.consumer_name,
        replicas=settings.stream_replicas,
        positions=consumer_positions,
        dead_letters=dead_letters,
        apply=ScoreProjection(store, keys).apply,
    )
    return Scoring(service, store, KeyCache(keys, service.sessions), FailureLimiter(settings.auth_failures_per_minute))


def projection_service(settings: Settings) -> ProjectionService:
    """What `kpi-ledger rebuild scoring` replays."""
    return build(settings).service
