"""What a unit's self-assessment of one component is refused for, or the event that records it.

One check for every way a measurement arrives (`POST /v1/measurements`, a row of a measurement
set): the stage, the unit's peer group in the period, the indicator, a not-applicable claim, the
inputs against the indicator's rule. Pure: the catalogue and the unit registry are values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kpi_core.assessment import assessed_unit_error, not_applicable_errors
from kpi_core.catalogue import Catalogue
from kpi_core.commands import RecordMeasurement
from kpi_core.events import Evidence, MeasurementRecorded
from kpi_core.measurements import FieldError, check_inputs
from kpi_core.refusals import Refused
from kpi_core.units import UnitRegistry


@dataclass(frozen=True)
class Submissions:
    """Whether a unit's self-assessments for a period are taken: the period open, or the unit reopened."""

    open: bool


def check_stage(command: RecordMeasurement) -> None:
    """The verified result is the evaluator's (003 §II.2.b): a measurement is a self-assessment."""
    if command.stage != "self_assessment":
        raise Refused(
            "forbidden",
            "the verification stage is the evaluator's result (003 §II.2.b): it is written through "
            "POST /v1/verifications, never as a measurement",
            [FieldError("stage", "a measurement is a self-assessment")],
        )


def measurement_event(command: RecordMeasurement, catalogue: Catalogue, registry: UnitRegistry) -> MeasurementRecorded:
    """The event that records this self-assessment, or `Refused` naming every field."""
    check_stage(command)
    check_unit(assessed_unit_error(registry, catalogue, command.period, command.unit_id))
    return checked_event(
        catalogue,
        catalogue_id=command.catalogue_id,
        catalogue_version=command.catalogue_version,
        period=command.period,
        unit_id=command.unit_id,
        indicator=command.indicator,
        inputs=command.inputs,
        not_applicable_reason=command.not_applicable_reason,
        evidence=command.evidence,
        submitted_by=command.submitted_by,
        responds_to=command.responds_to,
    )


def check_unit(unit_error: FieldError | None) -> None:
    """A unit its catalogue's peer group does not have in the period is refused (`assessed_unit_error`)."""
    if unit_error is not None:
        raise Refused("not_in_peer_group", unit_error.message, [unit_error])


def checked_event(
    catalogue: Catalogue,
    *,
    catalogue_id: str,
    catalogue_version: str,
    period: int,
    unit_id: str,
    indicator: str,
    inputs: Mapping[str, Any],
    not_applicable_reason: str | None,
    evidence: tuple[Evidence, ...],
    submitted_by: str,
    responds_to: str | None = None,
) -> MeasurementRecorded:
    """The rest of `measurement_event`, once the stage and the unit are checked: the indicator, a
    not-applicable claim, the inputs against the rule, then the event (a set checks each of its
    units once, not once a row, and its rows are validated values already, not commands)."""
    node = catalogue.node(indicator)
    if node is None:
        error = FieldError("indicator", f"{catalogue.id}@{catalogue.version} has no indicator {indicator}")
        raise Refused("invalid", f"unknown indicator {indicator}", [error])
    errors: list[FieldError] = []
    if not node.scored:
        errors.append(FieldError("indicator", f"{node.code} is not scored in this catalogue version"))
    values: dict[str, Any] = {}
    if not_applicable_reason is not None:
        if inputs:
            errors.append(FieldError("inputs", "a not-applicable declaration carries no inputs"))
        errors.extend(not_applicable_errors(node, self_assessed=True, evidence_count=len(evidence)))
    else:
        values, input_errors = check_inputs(node, inputs)
        errors.extend(input_errors)
    if errors:
        raise Refused("invalid", "; ".join(f"{error.field}: {error.message}" for error in errors), errors)
    return MeasurementRecorded(
        catalogue_id=catalogue_id,
        catalogue_version=catalogue_version,
        period=period,
        unit_id=unit_id,
        indicator=indicator,
        inputs={name: str(value) if isinstance(value, Decimal) else value for name, value in values.items()},
        not_applicable_reason=not_applicable_reason,
        evidence=evidence,
        submitted_by=submitted_by,
        responds_to=responds_to,
    )


def decide_submission(event: MeasurementRecorded, submissions: Submissions) -> MeasurementRecorded:
    """A checked self-assessment is taken only while its unit may submit for the period (003: the
    evaluator closes a period, and may reopen one unit)."""
    if not submissions.open:
        raise Refused(
            "period_closed",
            f"period {event.period} of {event.catalogue_id}@{event.catalogue_version} is closed for "
            f"submissions; an evaluator can reopen unit {event.unit_id}",
            [FieldError("period", "closed for submissions")],
        )
    return event
