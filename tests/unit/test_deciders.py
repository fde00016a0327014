"""The decisions of the assessment cycle, as pure functions of a command, a catalogue and the state
the log holds: each returns the event to append or refuses naming the field, no I/O."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from kpi_core.assessment import LatestVerification
from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.commands import PublishResult, ReopenUnit, ReportContext, RequestEvidence, VerifyMeasurement
from kpi_core.deciders import (
    PeriodState,
    PublicationState,
    SelfAssessment,
    VerificationState,
    check_verification,
    decide_context,
    decide_evidence_request,
    decide_publication,
    decide_reopening,
    decide_verification,
)
from kpi_core.events import MeasurementRecorded, MissingDecisions
from kpi_core.measurements import FieldError
from kpi_core.refusals import RefusalKind, Refused
from kpi_core.units import Unit
from kpi_ingest.service_layer.errors import (
    AdjustmentNotSuperseded,
    Conflict,
    IngestError,
    InvalidMeasurement,
    NotFound,
    RankingIncomplete,
    SelfApproval,
    ingest_error,
    refusals_as_ingest_errors,
)

SCOPE: dict[str, Any] = {"catalogue_id": "mini-dti", "catalogue_version": "1.0", "period": 2024}
LEAVES = ("1.1", "1.2", "3.1", "3.2")
HA_NOI = Unit(id="ha-noi", name_vi="Hà Nội", kind="centrally_run_city")
HUE = Unit(id="hue", name_vi="Huế", kind="centrally_run_city")


@pytest.fixture
def catalogue(mini_data: dict[str, Any]) -> Catalogue:
    """The mini catalogue, where 3.2 may be declared not applicable and general information is declared."""
    for node in mini_data["nodes"]:
        if node["code"] == "3.2":
            node["not_applicable"] = True
    mini_data["context_fields"] = [
        {"code": "population", "name_vi": "Số lượng dân số", "type": "count"},
        {"code": "has_ioc", "name_vi": "Có IOC", "type": "boolean"},
    ]
    return parse_catalogue(mini_data)


def refusal(raised: pytest.ExceptionInfo[Refused]) -> tuple[RefusalKind, str, list[tuple[str, str]]]:
    refused = raised.value
    return refused.kind, refused.detail, [(error.field, error.message) for error in refused.errors]


# verification


def verify(**fields: Any) -> VerifyMeasurement:
    values: dict[str, Any] = {
        **SCOPE,
        "unit_id": "ha-noi",
        "indicator": "3.1",
        "decision": "accepted",
        "idempotency_key": "k-1",
        "submitted_by": "evaluator-1",
    }
    return VerifyMeasurement.model_validate(values | fields)


def self_assessed(indicator: str = "3.1", event_id: str = "ev-self", **fields: Any) -> SelfAssessment:
    values: dict[str, Any] = {
        **SCOPE,
        "unit_id": "ha-noi",
        "indicator": indicator,
        "inputs": {"a": "30", "b": "40"},
        "submitted_by": "unit-ha-noi",
    }
    return SelfAssessment(MeasurementRecorded.model_validate(values | fields), event_id)


def test_accepting_records_the_latest_self_assessed_value_and_names_its_event(catalogue: Catalogue) -> None:
    event = decide_verification(verify(), catalogue, VerificationState(self_assessed()))
    assert event.stage == "verification" and event.decision == "accepted"
    assert event.inputs == {"a": "30", "b": "40"}
    assert event.verifies_event_id == "ev-self" and event.submitted_by == "evaluator-1"
    assert (event.unit_id, event.indicator, event.period) == ("ha-noi", "3.1", 2024)


def test_accepting_with_nothing_self_assessed_is_refused_naming_the_decision(catalogue: Catalogue) -> None:
    with pytest.raises(Refused) as raised:
        decide_verification(verify(), catalogue, VerificationState())
    assert refusal(raised) == (
        "invalid",
        "there is no self-assessed value to accept",
        [("decision", "nothing self-assessed to accept")],
    )


def test_an_adjustment_needs_a_reason(catalogue: Catalogue) -> None:
    command = verify(decision="adjusted", inputs={"a": 20, "b": 40})
    with pytest.raises(Refused) as raised:
        decide_verification(command, catalogue, VerificationState(self_assessed()))
    assert refusal(raised) == ("invalid", "an adjustment needs a reason", [("reason", "required to adjust")])
    with pytest.raises(Refused) as before_the_lock:
        check_verification(command, catalogue)  # what the handler refuses before it reads the log
    assert refusal(before_the_lock) == refusal(raised)


def test_an_adjustment_records_its_checked_inputs_as_exact_text_beside_the_self_assessment(
    catalogue: Catalogue,
) -> None:
    command = verify(decision="adjusted", inputs={"a": 20, "b": "40"}, reason="the survey counted 20")
    event = decide_verification(command, catalogue, VerificationState(self_assessed()))
    assert event.inputs == {"a": "20", "b": "40"}
    assert (event.decision, event.reason, event.verifies_event_id) == ("adjusted", "the survey counted 20", "ev-self")
    assert check_verification(command, catalogue) == {"a": "20", "b": "40"}


def test_an_adjustment_with_nothing_self_assessed_is_recorded(catalogue: Catalogue) -> None:
    command = verify(decision="adjusted", inputs={"a": 20, "b": 40}, reason="the unit sent nothing")
    event = decide_verification(command, catalogue, VerificationState())
    assert event.verifies_event_id is None and event.inputs == {"a": "20", "b": "40"}


def test_adjusted_inputs_the_rule_refuses_are_refused_naming_each_input(catalogue: Catalogue) -> None:
    command = verify(decision="adjusted", inputs={"a": "x", "c": 1}, reason="recount")
    with pytest.raises(Refused) as raised:
        decide_verification(command, catalogue, VerificationState())
    kind, detail, errors = refusal(raised)
    assert kind == "invalid"
    assert errors == [
        ("inputs.a", "'x' is not a number"),
        ("inputs.c", "3.1 has no input 'c'"),
        ("inputs.b", "input 'b' is required by the ratio rule"),
    ]
    assert detail == "; ".join(f"{field}: {message}" for field, message in errors)


def test_a_verification_of_an_unknown_indicator_is_refused(catalogue: Catalogue) -> None:
    with pytest.raises(Refused) as raised:
        decide_verification(verify(indicator="9.9"), catalogue, VerificationState(self_assessed()))
    assert refusal(raised) == ("invalid", "no indicator 9.9", [("indicator", "mini-dti has no 9.9")])


def test_an_adjustment_to_not_applicable_is_accepted_where_the_source_allows_it(catalogue: Catalogue) -> None:
    command = verify(indicator="3.2", decision="adjusted", not_applicable_reason="no such service", reason="checked")
    event = decide_verification(command, catalogue, VerificationState(self_assessed("3.2")))
    assert event.inputs == {} and event.not_applicable_reason == "no such service"


def test_an_adjustment_to_not_applicable_is_refused_where_the_source_applies_it_to_every_unit(
    catalogue: Catalogue,
) -> None:
    command = verify(decision="adjusted", not_applicable_reason="no such service", reason="checked")
    with pytest.raises(Refused) as raised:
        decide_verification(command, catalogue, VerificationState(self_assessed()))
    why = "3.1 cannot be declared not applicable: the source applies it to every unit"
    assert refusal(raised) == ("invalid", f"not_applicable_reason: {why}", [("not_applicable_reason", why)])


def test_accepting_a_not_applicable_claim_keeps_it_where_the_source_allows_it(catalogue: Catalogue) -> None:
    claim = self_assessed("3.2", inputs={}, not_applicable_reason="no such service")
    event = decide_verification(verify(indicator="3.2"), catalogue, VerificationState(claim))
    assert event.not_applicable_reason == "no such service" and event.inputs == {}


def test_accepting_a_not_applicable_claim_is_refused_where_the_source_does_not_allow_it(catalogue: Catalogue) -> None:
    claim = self_assessed("3.1", inputs={}, not_applicable_reason="no such service")
    with pytest.raises(Refused) as raised:
        decide_verification(verify(), catalogue, VerificationState(claim))
    kind, _, errors = refusal(raised)
    assert kind == "invalid" and [field for field, _ in errors] == ["not_applicable_reason"]


ADJUSTED = LatestVerification("ev-adjusted", "adjusted", "the survey counted 20")


def test_a_verification_that_would_replace_an_adjustment_must_name_it(catalogue: Catalogue) -> None:
    with pytest.raises(Refused) as raised:
        decide_verification(verify(), catalogue, VerificationState(self_assessed(), ADJUSTED))
    why = (
        "this component was adjusted by verification ev-adjusted (the survey counted 20); "
        "name it in `supersedes` to replace it"
    )
    assert refusal(raised) == ("not_superseded", why, [("supersedes", why)])


def test_a_verification_naming_the_adjustment_it_replaces_is_recorded(catalogue: Catalogue) -> None:
    event = decide_verification(
        verify(supersedes="ev-adjusted"), catalogue, VerificationState(self_assessed(), ADJUSTED)
    )
    assert event.supersedes == "ev-adjusted" and event.decision == "accepted"


@pytest.mark.parametrize(
    "latest", [None, LatestVerification("ev-accepted", "accepted", None)], ids=["nothing verified", "accepted"]
)
def test_supersedes_naming_no_verification_of_the_component_is_refused(
    catalogue: Catalogue, latest: LatestVerification | None
) -> None:
    with pytest.raises(Refused) as raised:
        decide_verification(verify(supersedes="ev-other"), catalogue, VerificationState(self_assessed(), latest))
    why = "names no verification of this component that it could replace"
    assert refusal(raised) == ("not_superseded", why, [("supersedes", why)])


def test_a_verification_after_an_acceptance_needs_no_supersedes(catalogue: Catalogue) -> None:
    accepted = LatestVerification("ev-accepted", "accepted", None)
    event = decide_verification(verify(), catalogue, VerificationState(self_assessed(), accepted))
    assert event.supersedes is None


# evidence requests, reopening, general information


def test_evidence_is_requested_on_a_component_of_the_catalogue(catalogue: Catalogue) -> None:
    command = RequestEvidence(
        **SCOPE, unit_id="ha-noi", indicator="1.2", message="the resolution?", idempotency_key="k", requested_by="ev"
    )
    event = decide_evidence_request(command, catalogue)
    assert (event.indicator, event.message, event.requested_by) == ("1.2", "the resolution?", "ev")
    with pytest.raises(Refused) as raised:
        decide_evidence_request(command.model_copy(update={"indicator": "7"}), catalogue)
    assert refusal(raised) == ("invalid", "no indicator 7", [("indicator", "mini-dti has no 7")])


REOPEN = ReopenUnit(**SCOPE, unit_id="ha-noi", reason="late documents", idempotency_key="k", reopened_by="ev")


def test_a_unit_is_reopened_in_a_closed_period() -> None:
    event = decide_reopening(REOPEN, PeriodState(closed=True))
    assert (event.unit_id, event.reason, event.reopened_by, event.period) == ("ha-noi", "late documents", "ev", 2024)


def test_reopening_a_period_not_closed_is_refused_naming_the_period() -> None:
    with pytest.raises(Refused) as raised:
        decide_reopening(REOPEN, PeriodState(closed=False))
    assert refusal(raised) == ("conflict", "the period is not closed", [("period", "not closed")])


def context(values: dict[str, Any]) -> ReportContext:
    return ReportContext(**SCOPE, unit_id="ha-noi", values=values, idempotency_key="k", submitted_by="unit-ha-noi")


def test_general_information_is_stored_as_the_catalogue_types_it(catalogue: Catalogue) -> None:
    event = decide_context(context({"population": "1.2E+3", "has_ioc": True}), catalogue)
    assert event.values == {"population": "1200", "has_ioc": True}
    assert (event.unit_id, event.submitted_by) == ("ha-noi", "unit-ha-noi")


def test_general_information_refuses_each_value_naming_its_field(catalogue: Catalogue) -> None:
    with pytest.raises(Refused) as raised:
        decide_context(context({"population": -5, "mayor": "x"}), catalogue)
    kind, detail, errors = refusal(raised)
    assert kind == "invalid"
    assert errors == [
        ("values.population", "cannot be negative"),
        ("values.mayor", "mini-dti has no general-information field mayor"),
    ]
    assert (
        detail == "values.population: cannot be negative; values.mayor: mini-dti has no general-information field mayor"
    )
    with pytest.raises(Refused) as raised:
        decide_context(context({}), catalogue)
    assert refusal(raised) == ("invalid", "values: at least one field", [("values", "at least one field")])


# publication


def publish(**fields: Any) -> PublishResult:
    return PublishResult.model_validate({**SCOPE, "idempotency_key": "k", "published_by": "approver"} | fields)


def verified(
    unit: Unit, *codes: str, by: str = "evaluator-1", decision: Literal["accepted", "adjusted"] = "accepted"
) -> list[MeasurementRecorded]:
    return [
        MeasurementRecorded(
            **SCOPE,
            unit_id=unit.id,
            indicator=code,
            stage="verification",
            inputs={},
            submitted_by=by,
            decision=decision,
            reason="recount" if decision == "adjusted" else None,
        )
        for code in codes
    ]


def publication(
    *measurements: MeasurementRecorded,
    current: str | None = None,
    members: tuple[Unit, ...] = (HA_NOI, HUE),
) -> PublicationState:
    return PublicationState(current_publication_id=current, head=41, measurements=measurements, members=members)


COMPLETE = (*verified(HA_NOI, *LEAVES), *verified(HUE, *LEAVES))


def decide(command: PublishResult, catalogue: Catalogue, state: PublicationState, allowed: bool = False) -> Any:
    return decide_publication(command, catalogue, state, publication_id="pub-2", self_approval_allowed=allowed)


def test_a_complete_verification_is_published_at_the_head_and_ranks_nothing_itself(catalogue: Catalogue) -> None:
    event = decide(publish(incomplete_reason="not needed"), catalogue, publication(*COMPLETE))
    assert (event.publication_id, event.as_of_sequence, event.stage, event.published_by) == (
        "pub-2",
        41,
        "verification",
        "approver",
    )
    assert event.ranking == () and event.moved == ()  # scoring freezes the ranking at the cut
    assert event.missing == () and event.incomplete_reason is None and event.adjusted_by == ()
    assert event.replaces is None


def test_a_restatement_must_name_the_publication_in_force(catalogue: Catalogue) -> None:
    for replaces in (None, "pub-0"):
        with pytest.raises(Refused) as raised:
            decide(publish(replaces=replaces, reason="corrected"), catalogue, publication(*COMPLETE, current="pub-1"))
        assert refusal(raised) == (
            "conflict",
            "this period is published (pub-1); a restatement must name it in `replaces`",
            [("replaces", "must be pub-1")],
        )


def test_replacing_a_period_never_published_is_refused_as_unknown(catalogue: Catalogue) -> None:
    with pytest.raises(Refused) as raised:
        decide(publish(replaces="pub-1", reason="corrected"), catalogue, publication(*COMPLETE))
    assert refusal(raised) == (
        "not_found",
        "nothing to replace: this period was never published",
        [("replaces", "unknown")],
    )


def test_a_restatement_needs_a_reason(catalogue: Catalogue) -> None:
    with pytest.raises(Refused) as raised:
        decide(publish(replaces="pub-1"), catalogue, publication(*COMPLETE, current="pub-1"))
    assert refusal(raised) == ("invalid", "a restatement needs a reason", [("reason", "required to restate")])


def test_a_restatement_names_what_it_replaces_and_why(catalogue: Catalogue) -> None:
    event = decide(publish(replaces="pub-1", reason="corrected"), catalogue, publication(*COMPLETE, current="pub-1"))
    assert (event.replaces, event.reason, event.publication_id) == ("pub-1", "corrected", "pub-2")


def test_a_peer_group_without_units_in_the_period_is_not_published(catalogue: Catalogue) -> None:
    with pytest.raises(Refused) as raised:
        decide(publish(), catalogue, publication(*COMPLETE, members=()))
    why = "the peer group has no units in this period: nothing to rank"
    assert refusal(raised) == ("incomplete", why, [("period", why)])


def test_a_ranking_without_any_decision_of_its_units_is_not_published(catalogue: Catalogue) -> None:
    outsider = Unit(id="quan-1", name_vi="Quận 1", kind="district")
    with pytest.raises(Refused) as raised:
        decide(publish(incomplete_reason="deadline"), catalogue, publication(*verified(outsider, *LEAVES)))
    why = "no component has a verification decision: the ranking would be empty"
    kind, detail, errors = refusal(raised)
    assert (kind, errors) == ("incomplete", [("period", why)])
    assert detail == f"{why}; ha-noi: 4 missing; hue: 4 missing"


def test_missing_decisions_are_published_only_with_a_stated_reason(catalogue: Catalogue) -> None:
    partial = publication(*verified(HA_NOI, *LEAVES), *verified(HUE, "1.1"))
    with pytest.raises(Refused) as raised:
        decide(publish(), catalogue, partial)
    why = "3 components of 1 units have no verification decision; verify them, or publish with `incomplete_reason`"
    assert refusal(raised) == ("incomplete", f"{why}; hue: 3 missing", [("incomplete_reason", why)])
    event = decide(publish(incomplete_reason="Huế sent late"), catalogue, partial)
    assert event.incomplete_reason == "Huế sent late"
    assert event.missing == (MissingDecisions(unit_id="hue", count=3, first=("1.2", "3.1", "3.2")),)


def test_who_adjusted_may_not_publish(catalogue: Catalogue) -> None:
    state = publication(*verified(HA_NOI, *LEAVES, by="approver", decision="adjusted"), *verified(HUE, *LEAVES))
    with pytest.raises(Refused) as raised:
        decide(publish(), catalogue, state)
    why = "approver adjusted verifications of this period; another approver must publish it"
    assert refusal(raised) == ("self_approval", why, [("published_by", why)])
    assert decide(publish(), catalogue, state, allowed=True).adjusted_by == ("approver",)
    assert decide(publish(published_by="approver-2"), catalogue, state).adjusted_by == ("approver",)


def test_only_an_adjustment_counts_for_four_eyes(catalogue: Catalogue) -> None:
    state = publication(*verified(HA_NOI, *LEAVES, by="approver"), *verified(HUE, *LEAVES))
    assert decide(publish(), catalogue, state).adjusted_by == ()


# the service layer's answer to a refusal


@pytest.mark.parametrize(
    ("kind", "error", "status"),
    [
        ("invalid", InvalidMeasurement, 422),
        ("conflict", Conflict, 409),
        ("not_found", NotFound, 404),
        ("incomplete", RankingIncomplete, 409),
        ("self_approval", SelfApproval, 403),
        ("not_superseded", AdjustmentNotSuperseded, 409),
    ],
)
def test_each_refusal_is_answered_as_the_ingest_error_of_its_kind(
    kind: RefusalKind, error: type[IngestError], status: int
) -> None:
    errors = [FieldError("period", "not closed")]
    answered = ingest_error(Refused(kind, "why", errors))
    assert type(answered) is error and answered.status == status
    assert (answered.detail, answered.errors) == ("why", errors)
    with pytest.raises(error), refusals_as_ingest_errors():
        raise Refused(kind, "why", errors)
