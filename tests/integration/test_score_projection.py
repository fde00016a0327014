"""The scoring projection on SQLite and PostgreSQL: peer-relative and year-over-year scores follow
every change that affects them, and always equal a from-scratch computation."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_common.auth import KeyStore
from kpi_common.catalogue_store import CatalogueStore, PeerGroupStore
from kpi_common.db import make_engine, session_factory
from kpi_common.migrations import upgrade
from kpi_common.tracking import TrackedProjection
from kpi_core.catalogue import parse_catalogue
from kpi_core.events import CatalogueVersionRegistered, DomainEvent, MeasurementRecorded, envelope_for
from kpi_core.inputs import RecordedInputs
from kpi_core.scoring import display_points, score_period
from kpi_scoring import MIGRATIONS_DIR, views
from kpi_scoring.adapters.orm import api_keys, catalogues, consumer_positions, dead_letters, peer_groups, scores
from kpi_scoring.service_layer.projection import ScoreProjection
from kpi_scoring.service_layer.score_log import ScoreLog
from tests.conftest import fixture_catalogue, postgres_database

DOCUMENT = fixture_catalogue("mini-relative@1.0")
CATALOGUE = parse_catalogue(DOCUMENT)


@pytest.fixture
async def projection(database_url: str) -> AsyncIterator[tuple[TrackedProjection, async_sessionmaker[AsyncSession]]]:
    upgrade(MIGRATIONS_DIR, database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    yield scoring_projection(sessions), sessions
    await engine.dispose()


def scoring_projection(sessions: async_sessionmaker[AsyncSession]) -> TrackedProjection:
    """Scoring's projection as the service builds it, writing its score log at the end of each batch."""
    log = ScoreLog()
    projection = ScoreProjection(CatalogueStore(catalogues), PeerGroupStore(peer_groups), KeyStore(api_keys), log)
    return TrackedProjection(
        sessions,
        "scoring",
        consumer_positions,
        dead_letters,
        projection.apply,
        projection.finish_batch,
        projection.committed,
    )


class Stream:
    def __init__(self, tracked: TrackedProjection) -> None:
        self.tracked, self.sequence = tracked, 0
        self.inputs: dict[int, dict[str, dict[str, RecordedInputs]]] = {}

    async def send(self, event: DomainEvent) -> str:
        self.sequence += 1
        event_id = str(uuid.uuid4())
        envelope = envelope_for(event, event_id=event_id, sequence=self.sequence, recorded_at=datetime.now(UTC))
        result = await self.tracked.apply_batch([envelope])
        assert result.applied == 1 and result.failed is None, result
        return event_id

    async def measure(self, period: int, unit: str, indicator: str, **inputs: Any) -> None:
        event = MeasurementRecorded(
            catalogue_id="mini-relative",
            catalogue_version="1.0",
            period=period,
            unit_id=unit,
            indicator=indicator,
            inputs={name: value if isinstance(value, bool) else str(value) for name, value in inputs.items()},
            submitted_by="t",
        )
        event_id = await self.send(event)
        typed = {name: value if isinstance(value, bool) else Decimal(str(value)) for name, value in inputs.items()}
        self.inputs.setdefault(period, {}).setdefault(unit, {})[indicator] = RecordedInputs(
            indicator, typed, event_id, self.sequence
        )


async def projected(sessions: async_sessionmaker[AsyncSession], period: int) -> dict[tuple[str, str], str | None]:
    async with sessions() as session:
        rows = await session.execute(select(scores).where(scores.c.period == period))
        return {(row.unit_id, row.code): row.points for row in rows}


def from_scratch(stream: Stream, period: int) -> dict[tuple[str, str], str | None]:
    results = score_period(CATALOGUE, stream.inputs.get(period, {}), stream.inputs.get(period - 1, {}))
    expected: dict[tuple[str, str], str | None] = {}
    for unit, unit_score in results.items():
        for code, points in unit_score.node_points.items():
            expected[(unit, code)] = str(display_points(points))
        expected[(unit, "*")] = str(display_points(unit_score.total))
    return expected


async def test_peer_relative_and_year_over_year_scores_follow_every_change(projection) -> None:  # type: ignore[no-untyped-def]
    tracked, sessions = projection
    stream = Stream(tracked)
    await stream.send(
        CatalogueVersionRegistered(
            catalogue_id="mini-relative",
            version="1.0",
            content_sha256=CATALOGUE.content_hash(),
            document=DOCUMENT,
            registered_by="t",
        )
    )
    await stream.measure(2023, "quan-1", "6.13", a="0.5", b="0.5")
    await stream.measure(2024, "quan-1", "5.1", a=4)
    await stream.measure(2024, "quan-3", "5.1", a=10)
    await stream.measure(2024, "thu-duc", "5.1", a=7)
    await stream.measure(2024, "quan-1", "5.2", a=True)
    await stream.measure(2024, "quan-1", "6.13", a="0.6")  # b comes from 2023: 0.6/0.5 = 1.2 ≥ 1.1 → 10
    rows = await projected(sessions, 2024)
    # Min-Max over 4, 7, 10: quan-1 0, thu-duc 5, quan-3 10
    assert (rows[("quan-1", "5.1")], rows[("thu-duc", "5.1")], rows[("quan-3", "5.1")]) == ("0.00", "5.00", "10.00")
    assert rows[("quan-1", "6.13")] == "10.00"
    assert rows[("quan-1", "*")] == "20.00"
    await stream.measure(2024, "quan-3", "5.1", a=5)  # the best unit corrects down: everyone's 5.1 moves
    rows = await projected(sessions, 2024)
    assert (rows[("quan-1", "5.1")], rows[("thu-duc", "5.1")], rows[("quan-3", "5.1")]) == ("0.00", "10.00", "3.33")
    async with sessions() as session:
        changed = await views.changes_by_event(session, stream.sequence)
    moved = {
        (change["unit_id"], change["code"]): (change["points_before"], change["points_after"]) for change in changed
    }
    assert moved[("thu-duc", "5.1")] == ("5.00", "10.00")  # another unit's score, changed by quan-3's correction
    assert moved[("quan-3", "5.1")] == ("10.00", "3.33")
    assert ("quan-1", "5.1") not in moved  # still the minimum: unchanged, so not listed
    assert moved[("thu-duc", "*")] == ("5.00", "10.00")
    await stream.measure(2023, "quan-1", "6.13", a="0.58", b="0.5")  # last year corrected: 0.6/0.58 < 1.1
    rows = await projected(sessions, 2024)
    assert rows[("quan-1", "6.13")] == str(display_points(Fraction(60, 58) / Fraction(11, 10) * 10))
    expected = from_scratch(stream, 2024)
    assert {key: expected[key] for key in rows} == rows  # every stored score equals a from-scratch computation
    assert {value for key, value in expected.items() if key not in rows} == {"0.00"}  # unstored: never reported
    async with sessions() as session:
        explanation = json.loads(
            (
                await session.execute(
                    select(scores.c.explanation).where(scores.c.code == "6.13", scores.c.period == 2024)
                )
            ).scalar_one()
        )
    assert explanation["inputs"] == {"a": "0.6", "b": "0.58"}
    assert explanation["previous_period_event_id"] == stream.inputs[2023]["quan-1"]["6.13"].event_id


async def test_peer_relative_scores_do_not_depend_on_the_order_units_report_in(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    reports = [("quan-1", 4), ("quan-3", 10), ("thu-duc", 7), ("binh-chanh", 5), ("quan-3", 6)]
    orders = [reports, [reports[3], reports[2], reports[0], reports[1], reports[4]]]
    finals = []
    for order in orders:
        url = database_url
        if finals:  # a second, empty database of the same kind
            sqlite = database_url.startswith("sqlite")
            url = (
                database_url.replace("test.db", "second.db")
                if sqlite
                else postgres_database(request.getfixturevalue("postgres_base_url"))
            )
        upgrade(MIGRATIONS_DIR, url)
        engine = make_engine(url)
        tracked = scoring_projection(session_factory(engine))
        stream = Stream(tracked)
        await stream.send(
            CatalogueVersionRegistered(
                catalogue_id="mini-relative",
                version="1.0",
                content_sha256=CATALOGUE.content_hash(),
                document=DOCUMENT,
                registered_by="t",
            )
        )
        for unit, count in order:
            await stream.measure(2024, unit, "5.1", a=count)
        finals.append(
            {key: value for key, value in (await projected(session_factory(engine), 2024)).items() if key[1] == "5.1"}
        )
        await engine.dispose()
    assert finals[0] == finals[1]
    # quan-3's last report (6) counts whatever the order: Min-Max over 4, 6, 7, 5 gives (6 − 4) / (7 − 4) × 10
    assert finals[0][("quan-3", "5.1")] == "6.67"
