"""A score event's envelope is written by orjson: the same bytes `EventEnvelope.to_bytes` (json.dumps)
gives, for any score lines (any text a submitter or a catalogue can put in them)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.test_explanation_bytes import CATALOGUE, scores, texts

from kpi_core.events import EventEnvelope
from kpi_core.score_events import SCORE_SOURCE, ScoresChanged
from kpi_core.scoring import IndicatorScore
from kpi_scoring.service_layer.score_log import envelope_text, score_line


def row_of(score: IndicatorScore, unit: str, sequence: int) -> dict[str, object]:
    return {
        **{"catalogue_id": CATALOGUE.id, "version": CATALOGUE.version, "period": 2024, "stage": "self_assessment"},
        **{"unit_id": unit, "code": score.code, "sequence": sequence, "status": score.status},
        **{"points_exact": "1/3", "max_points": "1", "explanation": "{}"},
    }


@settings(max_examples=150)
@given(
    st.lists(st.tuples(scores, texts, st.integers(min_value=1, max_value=2**62), st.booleans()), max_size=8),
    st.integers(min_value=0, max_value=2**62),
)
def test_a_score_event_is_written_as_to_bytes_writes_it(
    lines: list[tuple[IndicatorScore, str, int, bool]], answers_through: int
) -> None:
    data = {
        "answers_through": answers_through,
        "scores": [
            score_line(row_of(score, unit, sequence), score if leaf else None, "t")
            for score, unit, sequence, leaf in lines
        ],
    }
    envelope = EventEnvelope(
        id="0b7c9a9e-5d1e-4c63-9d3b-0c1f0f7f2f10",
        source=SCORE_SOURCE,
        type=ScoresChanged.type,
        subject="scores",
        time=datetime(2026, 12, 4, 1, 2, 3, 456789, tzinfo=UTC),
        dataschema=f"/v1/schemas/{ScoresChanged.type}",
        sequence=answers_through + 1,
        data=data,
    )
    assert envelope_text(envelope).encode("utf-8") == envelope.to_bytes()
