"""The detail reporting keeps of a score line, written directly, is `json.dumps` of it byte for byte,
for any text a line can carry (quotes, escapes, control characters, any script)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from kpi_core.score_events import PeerExtremes, ScoreLine
from kpi_reporting.service_layer.score_projection import detail, detail_json

texts = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(['"', "\\", "\n", "\u2028", "\x00", "Có"])
lines = st.builds(
    ScoreLine,
    catalogue_id=st.just("c"),
    catalogue_version=st.just("1.0"),
    period=st.just(2024),
    stage=st.just("self_assessment"),
    unit_id=texts,
    code=texts,
    sequence=st.integers(min_value=1, max_value=2**62),
    recorded_at=st.just("2026-12-02T00:00:00.000000Z"),
    status=st.sampled_from(["scored", "missing", "sum"]),
    points=st.none() | texts,
    max_points=st.none() | texts,
    value=st.none() | texts,
    formula=texts,
    inputs=st.dictionaries(texts, st.booleans() | texts, max_size=5),
    event_id=st.none() | texts,
    previous_period_event_id=st.none() | texts,
    peer=st.none()
    | st.builds(PeerExtremes, min=texts, max=texts, min_event_id=st.none() | texts, max_event_id=st.none() | texts),
)


@settings(max_examples=400)
@given(lines)
def test_the_detail_written_directly_is_its_json(line: ScoreLine) -> None:
    assert detail_json(line) == json.dumps(detail(line), ensure_ascii=False, sort_keys=True)
