"""The verification set's decision: every self-assessed component accepted except the listed
adjustments, each by the one verification decider (an earlier adjustment is never replaced silently)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import fixture_catalogue

from kpi_core.assessment import LatestVerification
from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.commands import VerifyMeasurement
from kpi_core.deciders import SelfAssessment, VerificationState
from kpi_core.events import MeasurementRecorded
from kpi_core.verification_sets import ComponentState, decide_verification_set

SCOPE = {"catalogue_id": "mini-dti", "catalogue_version": "1.0", "period": 2024, "unit_id": "gia-lai"}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return parse_catalogue(fixture_catalogue())


def verification(code: str, **fields: Any) -> VerifyMeasurement:
    decision = fields.pop("decision", "adjusted")
    return VerifyMeasurement(
        **SCOPE, indicator=code, decision=decision, idempotency_key="k", submitted_by="so-tttt", **fields
    )


def self_assessed(code: str, inputs: dict[str, str | bool], event_id: str) -> SelfAssessment:
    event = MeasurementRecorded(**SCOPE, indicator=code, inputs=inputs, submitted_by="gia-lai")
    return SelfAssessment(event, event_id)


def test_everything_is_accepted_but_the_adjustments(catalogue: Catalogue) -> None:
    states = {
        "1.2": ComponentState(VerificationState(self_assessed("1.2", {"a": True}, "e1"))),
        "3.1": ComponentState(VerificationState(self_assessed("3.1", {"a": "5", "b": "10"}, "e2"))),
    }
    adjustment = verification("3.1", inputs={"a": 4, "b": 10}, reason="Minh chứng chỉ có 4")
    decision = decide_verification_set([adjustment], verification("*", decision="accepted"), catalogue, states)
    assert [(event.indicator, event.decision) for event in decision.events] == [
        ("1.2", "accepted"),
        ("3.1", "adjusted"),
    ]
    assert decision.events[0].verifies_event_id == "e1" and decision.events[0].inputs == {"a": True}
    assert decision.events[1].inputs == {"a": "4", "b": "10"} and decision.refused == ()


def test_an_adjustment_needs_its_reason_and_an_earlier_adjustment_is_not_replaced_silently(
    catalogue: Catalogue,
) -> None:
    adjusted_before = LatestVerification("v1", "adjusted", "Thiếu minh chứng")
    states = {
        "1.2": ComponentState(VerificationState(self_assessed("1.2", {"a": True}, "e1"), adjusted_before), "e1"),
        "3.1": ComponentState(
            VerificationState(
                self_assessed("3.1", {"a": "5", "b": "10"}, "e2"), LatestVerification("v2", "accepted", None)
            ),
            "e2",
        ),
    }
    no_reason = verification("3.2", inputs={"a": 1, "b": 2})
    decision = decide_verification_set([no_reason], verification("*", decision="accepted"), catalogue, states)
    assert decision.unchanged == ("3.1",)  # already accepted as it stands: nothing to record
    assert [(error.row, error.field) for error in decision.refused] == [(0, "accepted.1.2"), (1, "reason")]
    assert "v1" in decision.refused[0].message
    named = verification("1.2", inputs={"a": True}, reason="Đã bổ sung minh chứng", supersedes="v1")
    decision = decide_verification_set([named], verification("*", decision="accepted"), catalogue, states)
    assert decision.refused == () and [event.supersedes for event in decision.events] == ["v1"]
