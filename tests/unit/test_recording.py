"""The one check of a self-assessment (`kpi_core.recording`), pure: stage, unit, indicator, inputs,
and the period's submissions, each refused with its kind and the fields it is about."""

from __future__ import annotations

from typing import Any

import pytest

from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.commands import RecordMeasurement
from kpi_core.recording import Submissions, check_stage, decide_submission, measurement_event
from kpi_core.refusals import Refused
from kpi_core.units import UnitRegistry, parse_peer_group
from kpi_ingest.adapters.catalogue_files import bundled_catalogue_documents, bundled_peer_group_documents


@pytest.fixture(scope="module")
def districts() -> Catalogue:
    return parse_catalogue(next(d for d in bundled_catalogue_documents() if d["id"] == "hcmc-dti-districts"))


@pytest.fixture(scope="module")
def registry() -> UnitRegistry:
    return UnitRegistry({group.id: group for group in map(parse_peer_group, bundled_peer_group_documents())})


def command(**changes: Any) -> RecordMeasurement:
    fields: dict[str, Any] = {
        "catalogue_id": "hcmc-dti-districts",
        "catalogue_version": "1.0",
        "period": 2024,
        "unit_id": "quan-1",
        "indicator": "3.3",
        "inputs": {"a": "0.81"},
        "idempotency_key": "k",
        "submitted_by": "reporter",
    }
    return RecordMeasurement(**(fields | changes))


def refusal(raised: pytest.ExceptionInfo[Refused]) -> tuple[str, list[str]]:
    return raised.value.kind, [error.field for error in raised.value.errors]


def test_a_valid_self_assessment_is_the_event_that_records_it(districts: Catalogue, registry: UnitRegistry) -> None:
    event = measurement_event(command(), districts, registry)
    assert (event.unit_id, event.indicator, event.inputs) == ("quan-1", "3.3", {"a": "0.81"})
    assert event.stage == "self_assessment"


@pytest.mark.parametrize(
    ("changes", "kind", "fields"),
    [
        ({"stage": "verification"}, "forbidden", ["stage"]),
        ({"unit_id": "ha-noi"}, "not_in_peer_group", ["unit_id"]),
        ({"indicator": "99.9"}, "invalid", ["indicator"]),
        ({"inputs": {"a": "not a number"}}, "invalid", ["inputs.a"]),
    ],
)
def test_each_refusal_has_its_kind_and_names_its_fields(
    districts: Catalogue, registry: UnitRegistry, changes: dict[str, Any], kind: str, fields: list[str]
) -> None:
    with pytest.raises(Refused) as raised:
        measurement_event(command(**changes), districts, registry)
    assert refusal(raised) == (kind, fields)


def test_the_stage_is_checked_before_anything_else() -> None:
    with pytest.raises(Refused) as raised:
        check_stage(command(stage="verification", indicator="99.9"))
    assert refusal(raised) == ("forbidden", ["stage"])


def test_a_closed_period_refuses_a_submission_and_an_open_one_takes_it(
    districts: Catalogue, registry: UnitRegistry
) -> None:
    event = measurement_event(command(), districts, registry)
    assert decide_submission(event, Submissions(open=True)) is event
    with pytest.raises(Refused) as raised:
        decide_submission(event, Submissions(open=False))
    assert refusal(raised) == ("period_closed", ["period"])
    assert "an evaluator can reopen unit quan-1" in raised.value.detail
