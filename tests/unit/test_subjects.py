"""Subjects are transport naming, kept in kpi_common: the same subjects as the events carried before
(sync jobs filter on them), for every event type, with and without a unit."""

from __future__ import annotations

import pytest

from kpi_common.subjects import event_subject, score_subject
from kpi_core.events import EVENT_TYPES
from kpi_core.score_events import ResultFrozen, ScoresChanged

SAMPLE = {"catalogue_id": "vn-dti-province", "unit_id": "gia-lai", "peer_group_id": "provinces", "key_id": "k-1"}
EXPECTED = {
    "vn.kpi.measurement.recorded.v1": "kpi.measurement.recorded.v1.vn-dti-province.gia-lai",
    "vn.kpi.catalogue.registered.v1": "kpi.catalogue.registered.v1.vn-dti-province._",
    "vn.kpi.units.registered.v1": "kpi.units.registered.v1.provinces._",
    "vn.kpi.keys.granted.v1": "kpi.keys.granted.v1.k-1._",
    "vn.kpi.keys.revoked.v1": "kpi.keys.revoked.v1.k-1._",
    "vn.kpi.audit.checkpoint.v1": "kpi.audit.checkpoint.v1._._",
    "vn.kpi.result.published.v1": "kpi.result.published.v1.vn-dti-province._",
    "vn.kpi.period.closed.v1": "kpi.period.closed.v1.vn-dti-province._",
}


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_each_event_type_is_published_under_its_documented_subject(event_type: str) -> None:
    cls = EVENT_TYPES[event_type]
    event = cls.model_construct(**{name: value for name, value in SAMPLE.items() if name in cls.model_fields})
    subject = event_subject(event)  # type: ignore[arg-type]
    if event_type in EXPECTED:
        assert subject == EXPECTED[event_type]
    assert subject.startswith("kpi." + event_type.removeprefix("vn.kpi.") + ".")
    assert len(subject.split(".")) == len(event_type.split(".")) + 1  # kpi, noun, verb, vN, group, unit
    if "unit_id" in cls.model_fields:
        assert subject.endswith(".gia-lai")
    if "unit_id" in cls.model_fields and not cls.model_fields["unit_id"].is_required():  # a period-wide event
        without_unit = cls.model_construct(**{**SAMPLE, "unit_id": None})
        assert event_subject(without_unit).endswith("._")  # type: ignore[arg-type]


def test_score_events_have_the_score_streams_subjects() -> None:
    assert score_subject(ScoresChanged.model_construct(answers_through=1, scores=())) == "kpi-scores.changed.v1"
    frozen = ResultFrozen.model_construct(catalogue_id="vn-dti-province")
    assert score_subject(frozen) == "kpi-scores.frozen.v1.vn-dti-province"
