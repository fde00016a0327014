"""Composition root of the reporting service."""

from __future__ import annotations

from dataclasses import dataclass

from kpi_common.auth import KeyCache, KeyStore
from kpi_common.catalogue_store import CatalogueStore, PeerGroupStore
from kpi_common.failure_limits import FailureLimiter
from kpi_common.projection_service import FurtherStream, ProjectionService, build_projection_service
from kpi_common.streams import SCORES
from kpi_reporting.adapters.orm import api_keys, catalogues, consumer_positions, dead_letters, peer_groups
from kpi_reporting.config import Settings
from kpi_reporting.service_layer.projection import HistoryProjection
from kpi_reporting.service_layer.score_projection import ScoreHistoryProjection
from kpi_reporting.views import ResultCache


@dataclass
class Reporting:
    service: ProjectionService
    catalogues: CatalogueStore
    peer_groups: PeerGroupStore
    cache: ResultCache
    keys: KeyCache
    auth_failures: FailureLimiter


def build(settings: Settings) -> Reporting:
    store = CatalogueStore(catalogues)
    units = PeerGroupStore(peer_groups)
    keys = KeyStore(api_keys)
    history = HistoryProjection(store, units, keys)
    scores = ScoreHistoryProjection()
    service = build_projection_service(
        database_url=settings.database_url,
        nats_url=settings.nats_url,
        consumer=settings.consumer_name,
        replicas=settings.stream_replicas,
        positions=consumer_positions,
        dead_letters=dead_letters,
        apply=history.apply,
        finish_batch=history.finish_batch,
        also=[FurtherStream(f"{settings.consumer_name}-scores", SCORES, scores.apply, scores.finish_batch)],
    )
    limiter = FailureLimiter(settings.auth_failures_per_minute)
    return Reporting(service, store, units, ResultCache(), KeyCache(keys, service.sessions), limiter)


def projection_service(settings: Settings) -> ProjectionService:
    """What `kpi-ledger rebuild reporting` replays."""
    return build(settings).service
