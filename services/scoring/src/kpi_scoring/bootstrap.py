"""Composition root of the scoring service."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from kpi_common.auth import KeyCache, KeyStore
from kpi_common.catalogue_store import CatalogueStore, PeerGroupStore
from kpi_common.failure_limits import FailureLimiter
from kpi_common.projection_service import ProjectionService, build_projection_service
from kpi_common.relay import Relay
from kpi_common.streams import SCORES, ensure_stream
from kpi_common.subjects import WITHHELD_SCORE_SUBJECT
from kpi_scoring.adapters.orm import api_keys, catalogues, consumer_positions, dead_letters, peer_groups
from kpi_scoring.adapters.score_outbox import ScoreOutbox
from kpi_scoring.config import Settings
from kpi_scoring.service_layer.projection import ScoreProjection
from kpi_scoring.service_layer.score_log import ScoreLog


@dataclass
class Scoring:
    service: ProjectionService
    catalogues: CatalogueStore
    keys: KeyCache
    auth_failures: FailureLimiter
    relay: Relay  # publishes the score log on the score stream
    outbox: ScoreOutbox


def build(settings: Settings) -> Scoring:
    store, keys, log = CatalogueStore(catalogues), KeyStore(api_keys), ScoreLog()
    projection = ScoreProjection(store, PeerGroupStore(peer_groups), keys, log)
    service = build_projection_service(
        database_url=settings.database_url,
        nats_url=settings.nats_url,
        consumer=settings.consumer_name,
        replicas=settings.stream_replicas,
        positions=consumer_positions,
        dead_letters=dead_letters,
        apply=projection.apply,
        finish_batch=projection.finish_batch,
        committed=projection.committed,
    )
    outbox = ScoreOutbox(service.sessions, service.turns)
    relay = Relay(
        outbox,
        settings.nats_url,
        client_name="kpi-scoring-relay",
        stream_name=SCORES.name,
        ensure_stream=partial(ensure_stream, replicas=settings.stream_replicas, stream=SCORES),
        withheld_subject=WITHHELD_SCORE_SUBJECT,
    )
    projection.on_commit = relay.wake.set
    limiter = FailureLimiter(settings.auth_failures_per_minute)
    return Scoring(service, store, KeyCache(keys, service.sessions), limiter, relay, outbox)


def projection_service(settings: Settings) -> ProjectionService:
    """What `kpi-ledger rebuild scoring` replays."""
    return build(settings).service
