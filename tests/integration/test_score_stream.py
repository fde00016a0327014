"""One scoring path, on SQLite and PostgreSQL: reporting reads exactly what scoring computed.

The scoring projection writes its score events at the end of each batch; applied to reporting's
score tables, they give, at every log sequence, exactly the from-scratch computation over the
measurements up to that sequence. A publication's ranking is frozen by scoring at its cut. A
replay of scoring (a rebuild) publishes nothing twice and goes on numbering after it.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kpi_common.as_of import AsOf
from kpi_common.db import make_engine, session_factory
from kpi_common.migrations import upgrade
from kpi_common.tracking import TrackedProjection
from kpi_core.events import (
    CatalogueVersionRegistered,
    DomainEvent,
    EventEnvelope,
    MeasurementRecorded,
    ResultPublished,
    envelope_for,
)
from kpi_core.inputs import RecordedInputs
from kpi_core.ranking import frozen_ranking
from kpi_core.scope import Scope
from kpi_core.score_events import ResultFrozen, decode_score_event
from kpi_core.scoring import score_period
from kpi_reporting import MIGRATIONS_DIR as REPORTING_MIGRATIONS
from kpi_reporting.adapters import orm as reporting_orm
from kpi_reporting.score_reading import reported_units, unit_scores
from kpi_reporting.service_layer.score_projection import ScoreHistoryProjection, answers_through
from kpi_scoring import MIGRATIONS_DIR as SCORING_MIGRATIONS
from kpi_scoring.adapters import orm as scoring_orm
from tests.conftest import postgres_database
from tests.integration.test_score_projection import CATALOGUE, DOCUMENT, scoring_projection

SCOPE = Scope("mini-relative", "1.0", 2024, "self_assessment")
UNITS = ("quan-1", "quan-3", "thu-duc", "binh-chanh")
PILLARS = [root.code for root in CATALOGUE.roots if root.scored]


class Log:
    """The event log, kept here to replay and to compute from scratch."""

    def __init__(self) -> None:
        self.envelopes: list[EventEnvelope] = []
        self.measured: list[tuple[int, MeasurementRecorded, str]] = []  # (sequence, event, event id)

    def add(self, event: DomainEvent) -> EventEnvelope:
        event_id = str(uuid.uuid4())
        sequence = len(self.envelopes) + 1
        envelope = envelope_for(event, event_id=event_id, sequence=sequence, recorded_at=datetime.now(UTC))
        self.envelopes.append(envelope)
        if isinstance(event, MeasurementRecorded):
            self.measured.append((sequence, event, event_id))
        return envelope

    def inputs_at(self, sequence: int, period: int) -> dict[str, dict[str, RecordedInputs]]:
        found: dict[str, dict[str, RecordedInputs]] = {}
        for at, event, event_id in self.measured:
            if at <= sequence and event.period == period and event.stage == "self_assessment":
                typed = {
                    name: value if isinstance(value, bool) else Decimal(value) for name, value in event.inputs.items()
                }
                found.setdefault(event.unit_id, {})[event.indicator] = RecordedInputs(
                    event.indicator, typed, event_id, at
                )
        return found

    def from_scratch(self, sequence: int) -> dict[str, dict[str, Fraction]]:
        scores = score_period(CATALOGUE, self.inputs_at(sequence, 2024), self.inputs_at(sequence, 2023))
        return {unit: {**score.pillar_points(CATALOGUE), "*": score.total} for unit, score in scores.items()}


def catalogue_registered() -> CatalogueVersionRegistered:
    return CatalogueVersionRegistered(
        catalogue_id="mini-relative",
        version="1.0",
        content_sha256=CATALOGUE.content_hash(),
        document=DOCUMENT,
        registered_by="t",
    )


def a_history(seed: int) -> Log:
    """Peer-relative and year-over-year measurements with corrections, two publications among them."""
    rng = random.Random(seed)
    log = Log()
    log.add(catalogue_registered())
    for index in range(60):
        period, unit = rng.choice((2023, 2024, 2024, 2024)), rng.choice(UNITS)
        indicator = rng.choice(("5.1", "5.2", "6.13"))
        inputs: dict[str, str | bool] = {
            "5.1": {"a": str(rng.randint(0, 20))},
            "5.2": {"a": rng.random() < 0.5},
            "6.13": {"a": str(rng.randint(1, 9) / 10), **({"b": "0.5"} if period == 2023 else {})},
        }[indicator]
        log.add(
            MeasurementRecorded(
                catalogue_id="mini-relative",
                catalogue_version="1.0",
                period=period,
                unit_id=unit,
                indicator=indicator,
                inputs=inputs,
                submitted_by="t",
            )
        )
        if index in (30, 55):
            log.add(
                ResultPublished(
                    catalogue_id="mini-relative",
                    catalogue_version="1.0",
                    period=2024,
                    publication_id=str(uuid.uuid4()),
                    stage="self_assessment",
                    as_of_sequence=len(log.envelopes),
                    published_by="approver",
                )
            )
    return log


async def apply_in_batches(tracked: TrackedProjection, envelopes: list[EventEnvelope], seed: int) -> None:
    rng, start = random.Random(seed), await tracked.last_applied()
    while start < len(envelopes):
        size = rng.randint(1, 25)
        result = await tracked.apply_batch(envelopes[start : start + size])
        assert result.failed is None, result.failed
        start += result.applied


async def score_log(sessions: async_sessionmaker[AsyncSession]) -> list[EventEnvelope]:
    async with sessions() as session:
        rows = await session.execute(
            select(scoring_orm.score_log.c.envelope).order_by(scoring_orm.score_log.c.sequence)
        )
        return [EventEnvelope.from_bytes(row.envelope.encode()) for row in rows]


async def derived_tables(sessions: async_sessionmaker[AsyncSession]) -> dict[str, list[tuple[object, ...]]]:
    """Every row of what scoring derives from the log (the inputs, scores, lineage, frozen rankings)."""
    tables = (scoring_orm.measurements, scoring_orm.scores, scoring_orm.score_changes, scoring_orm.frozen_results)
    async with sessions() as session:
        return {table.name: sorted(tuple(row) for row in await session.execute(select(table))) for table in tables}


def second_database(request: pytest.FixtureRequest, database_url: str) -> str:
    if database_url.startswith("sqlite"):
        return database_url.replace("test.db", "reporting.db")
    return postgres_database(request.getfixturevalue("postgres_base_url"))


async def test_reporting_reads_exactly_what_scoring_computed_at_every_sequence(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    log = a_history(seed=7)
    upgrade(SCORING_MIGRATIONS, database_url)
    reporting_url = second_database(request, database_url)
    upgrade(REPORTING_MIGRATIONS, reporting_url)
    scoring_engine, reporting_engine = make_engine(database_url), make_engine(reporting_url)
    scoring_sessions, reporting_sessions = session_factory(scoring_engine), session_factory(reporting_engine)
    try:
        await apply_in_batches(scoring_projection(scoring_sessions), log.envelopes, seed=1)
        published = await score_log(scoring_sessions)
        assert [envelope.sequence for envelope in published] == list(range(1, len(published) + 1))
        history = ScoreHistoryProjection()
        reporting = TrackedProjection(
            reporting_sessions,
            "reporting-scores",
            reporting_orm.consumer_positions,
            reporting_orm.dead_letters,
            history.apply,
            history.finish_batch,
        )
        await apply_in_batches(reporting, published, seed=2)
        async with reporting_sessions() as session:
            assert await answers_through(session) == len(log.envelopes)
            for sequence in range(1, len(log.envelopes) + 1):
                read, _ = await unit_scores(session, CATALOGUE, SCOPE, AsOf(sequence=sequence))
                shown = {unit: {**score.pillar_points(CATALOGUE), "*": score.total} for unit, score in read.items()}
                assert shown == log.from_scratch(sequence), f"at sequence {sequence}"
                reported = set(log.inputs_at(sequence, 2024))
                assert await reported_units(session, SCOPE, AsOf(sequence=sequence)) == reported, sequence
                moment = AsOf.parse(log.envelopes[sequence - 1].time.isoformat())
                assert await reported_units(session, SCOPE, moment) == reported, f"at {moment}"
        frozen = [event for event in map(_decoded, published) if isinstance(event, ResultFrozen)]
        assert len(frozen) == 2
        for ranking in frozen:
            at_cut = log.from_scratch(ranking.as_of_sequence)
            expected = frozen_ranking({unit: points["*"] for unit, points in at_cut.items()}, at_cut, PILLARS)
            assert ranking.ranking == expected
            assert ranking.as_of_sequence == ranking.publication_sequence - 1
    finally:
        await scoring_engine.dispose()
        await reporting_engine.dispose()


def _decoded(envelope: EventEnvelope) -> object:
    return decode_score_event(envelope.type, envelope.data)


async def test_a_replay_of_scoring_publishes_nothing_twice_and_numbers_on(database_url: str) -> None:
    log = a_history(seed=11)
    upgrade(SCORING_MIGRATIONS, database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    try:
        await apply_in_batches(scoring_projection(sessions), log.envelopes, seed=3)
        before = await score_log(sessions)
        derived = await derived_tables(sessions)
        async with sessions() as session:  # what `kpi-ledger rebuild scoring` empties
            for table in reversed(scoring_orm.metadata.sorted_tables):
                if not table.info.get("kept_on_rebuild"):
                    await session.execute(delete(table))
            await session.commit()
        await apply_in_batches(scoring_projection(sessions), log.envelopes, seed=4)  # other batch sizes
        assert await score_log(sessions) == before
        assert await derived_tables(sessions) == derived, "the replay (folded, scored once) derives what live did"
        log.add(
            MeasurementRecorded(
                catalogue_id="mini-relative",
                catalogue_version="1.0",
                period=2024,
                unit_id="quan-1",
                indicator="5.1",
                inputs={"a": "99"},
                submitted_by="t",
            )
        )
        await apply_in_batches(scoring_projection(sessions), log.envelopes, seed=5)
        after = await score_log(sessions)
        assert after[: len(before)] == before
        (newest,) = after[len(before) :]
        assert newest.sequence == before[-1].sequence + 1
        assert newest.data["answers_through"] == len(log.envelopes)
        assert {(line["unit_id"], line["code"]) for line in newest.data["scores"]} >= {
            ("quan-1", "5.1"),
            ("quan-1", "*"),
        }
        async with sessions() as session:
            outbox = await session.scalar(select(func.count()).select_from(scoring_orm.score_outbox))
        assert outbox == len(after)  # nothing published yet in this test: every score event waits for the relay
    finally:
        await engine.dispose()


async def test_a_peer_measurement_that_moves_no_extreme_still_touches_every_units_rows_live_as_in_a_replay(
    database_url: str,
) -> None:
    """Live, the other units are not rescored when the peers' extremes stay (values and the events
    that set them: their scores and explanations cannot move), yet their rows take the event's
    sequence exactly as a replay's do."""
    log = Log()
    log.add(catalogue_registered())
    # quan-3 moves between the extremes twice; then quan-1 sends its lowest value again: the values
    # of the extremes stay, the event that set the lowest does not (every explanation names it)
    measured = (("quan-1", "5"), ("quan-3", "10"), ("thu-duc", "15"), ("quan-3", "12"), ("quan-3", "11"))
    for unit, value in (*measured, ("quan-1", "5"), ("quan-3", "13")):
        log.add(
            MeasurementRecorded(
                catalogue_id="mini-relative",
                catalogue_version="1.0",
                period=2024,
                unit_id=unit,
                indicator="5.1",
                inputs={"a": value},
                submitted_by="t",
            )
        )
    upgrade(SCORING_MIGRATIONS, database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    try:
        live = scoring_projection(sessions)
        result = await live.apply_batch(log.envelopes)  # one batch: the rows of the units are pending
        assert result.applied == len(log.envelopes) and result.failed is None
        derived = await derived_tables(sessions)
        last = len(log.envelopes)
        touched = {
            (row[4], row[5]): row[-1] for row in derived["scores"] if row[5] in ("5.1", "5", "*")
        }  # (unit, code) -> sequence
        assert {touched[(unit, code)] for unit in ("quan-1", "thu-duc") for code in ("5.1", "5", "*")} == {last}
        async with sessions() as session:
            for table in reversed(scoring_orm.metadata.sorted_tables):
                if not table.info.get("kept_on_rebuild"):
                    await session.execute(delete(table))
            await session.commit()
        await apply_in_batches(scoring_projection(sessions), log.envelopes, seed=6)
        assert await derived_tables(sessions) == derived
    finally:
        await engine.dispose()


@pytest.mark.parametrize("seed", range(4))
async def test_live_scoring_derives_what_a_replay_does_when_peers_tie_and_send_again(
    database_url: str, seed: int
) -> None:
    """Few distinct values for the peer-relative leaf, so extremes tie, are held by one unit then
    another, and the unit holding one sends the same value again: live (each event rescored, the
    other units only when the extremes moved) and a replay (each touched leaf scored once a batch)
    write the same rows, explanations and sequences included."""
    rng = random.Random(seed)
    log = Log()
    log.add(catalogue_registered())
    for _ in range(80):
        indicator = rng.choice(("5.1", "5.1", "5.1", "5.2"))
        inputs: dict[str, str | bool] = (
            {"a": str(rng.randint(0, 2))} if indicator == "5.1" else {"a": rng.random() < 0.5}
        )
        log.add(
            MeasurementRecorded(
                catalogue_id="mini-relative",
                catalogue_version="1.0",
                period=2024,
                unit_id=rng.choice(UNITS),
                indicator=indicator,
                inputs=inputs,
                submitted_by="t",
            )
        )
    upgrade(SCORING_MIGRATIONS, database_url)
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    try:
        await apply_in_batches(scoring_projection(sessions), log.envelopes, seed=seed)
        derived = await derived_tables(sessions)
        async with sessions() as session:
            for table in reversed(scoring_orm.metadata.sorted_tables):
                if not table.info.get("kept_on_rebuild"):
                    await session.execute(delete(table))
            await session.commit()
        await apply_in_batches(scoring_projection(sessions), log.envelopes, seed=seed + 100)
        assert await derived_tables(sessions) == derived
    finally:
        await engine.dispose()
