"""The explanation scoring writes directly is `json.dumps` of the explanation, byte for byte, for
any text a submitter or a catalogue can put in it (quotes, escapes, control characters, any script)."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from kpi_core.catalogue import parse_catalogue
from kpi_core.scoring import IndicatorScore, PeerStats
from kpi_ingest.adapters.catalogue_files import bundled_catalogue_documents
from kpi_scoring.service_layer.projection import explain_indicator, explanation_json

CATALOGUE = parse_catalogue(next(iter(bundled_catalogue_documents())))
CODES = [leaf.code for leaf in CATALOGUE.leaves()] + ["not-in-the-catalogue"]

texts = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(['"', "\\", "\n", "\u2028", "\x00", "Có"])
fractions = st.fractions(min_value=-1000, max_value=1000, max_denominator=10_000)
input_values = st.booleans() | texts | st.decimals(allow_nan=False, allow_infinity=False, places=4)
peers = st.none() | st.builds(PeerStats, fractions, fractions, st.none() | texts, st.none() | texts)
scores = st.builds(
    IndicatorScore,
    st.sampled_from(CODES),
    st.sampled_from(["scored", "missing", "not_applicable"]),
    st.none() | fractions,
    st.none() | fractions,
    value=st.none() | fractions,
    formula=texts,
    inputs=st.dictionaries(texts, input_values, max_size=5),
    event_id=st.none() | texts,
    sequence=st.none() | st.integers(min_value=0, max_value=2**62),
    peer=peers,
    previous_event_id=st.none() | texts,
)


@settings(max_examples=400)
@given(scores)
def test_the_explanation_written_directly_is_its_json(score: IndicatorScore) -> None:
    expected = json.dumps(explain_indicator(CATALOGUE, score), ensure_ascii=False, sort_keys=True)
    assert explanation_json(CATALOGUE, score) == expected


def test_a_decimal_input_is_written_as_its_text() -> None:
    score = IndicatorScore(CODES[0], "scored", Fraction(1), Fraction(2), inputs={"b": Decimal("1.50"), "a": True})
    assert json.loads(explanation_json(CATALOGUE, score))["inputs"] == {"a": True, "b": "1.50"}


@settings(max_examples=300)
@given(scores)
def test_a_score_line_says_what_the_explanation_says(score: IndicatorScore) -> None:
    """A changed score's line is built from its score, not by reading its explanation back: the two
    agree on every part they share, for any score."""
    from kpi_core.score_events import PeerExtremes, ScoreLine
    from kpi_scoring.service_layer.score_log import score_line

    explanation = json.loads(explanation_json(CATALOGUE, score))
    row = {
        **{"catalogue_id": CATALOGUE.id, "version": CATALOGUE.version, "period": 2024, "stage": "self_assessment"},
        **{"unit_id": "gia-lai", "code": score.code, "sequence": 7, "status": score.status},
        **{"points_exact": "1/3", "max_points": "1", "explanation": json.dumps(explanation)},
    }
    peer = explanation["peer"]
    read_back = ScoreLine(
        **{"catalogue_id": CATALOGUE.id, "catalogue_version": CATALOGUE.version, "period": 2024},
        **{"stage": "self_assessment", "unit_id": "gia-lai", "code": score.code, "sequence": 7},
        **{"recorded_at": "2026-12-02T00:00:00.000000Z", "status": score.status, "points": "1/3", "max_points": "1"},
        value=explanation["value"],
        formula=explanation["formula"] or "",
        inputs=explanation["inputs"] or {},
        event_id=explanation["event_id"],
        previous_period_event_id=explanation["previous_period_event_id"],
        peer=PeerExtremes(**peer) if peer else None,
    )
    line = score_line(row, score, "2026-12-02T00:00:00.000000Z")
    # the line is the score stream's JSON form of a ScoreLine: the same fields in the same order, and a
    # valid ScoreLine (the stream's consumers decode it as one)
    assert list(line.items()) == list(read_back.model_dump(mode="json").items())
    assert ScoreLine.model_validate(line) == read_back
    sum_line = ScoreLine.model_validate(score_line(row, None, "t"))
    assert sum_line.inputs == {} and sum_line.peer is None
