"""Commands are frozen, explicit shapes: unknown fields are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kpi_core.commands import RecordMeasurement

BASE = {
    "catalogue_id": "mini-dti",
    "catalogue_version": "1.0",
    "period": 2024,
    "unit_id": "gia-lai",
    "indicator": "3.1",
    "inputs": {"a": 3, "b": 4},
    "idempotency_key": "k-1",
    "submitted_by": "svc-test",
}


def test_record_measurement_defaults_to_a_self_assessment_without_evidence():
    command = RecordMeasurement.model_validate(BASE)
    assert (command.stage, command.evidence, command.not_applicable_reason) == ("self_assessment", (), None)


def test_record_measurement_refuses_an_unknown_field():
    with pytest.raises(ValidationError, match="extra_forbidden"):
        RecordMeasurement.model_validate({**BASE, "score": "10"})


def test_record_measurement_refuses_an_unknown_stage():
    with pytest.raises(ValidationError, match="stage"):
        RecordMeasurement.model_validate({**BASE, "stage": "final"})


def test_record_measurement_is_frozen():
    command = RecordMeasurement.model_validate(BASE)
    with pytest.raises(ValidationError, match="frozen"):
        command.period = 2025  # type: ignore[misc]
