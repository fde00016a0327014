"""General information (context) values, checked by the type the catalogue declares for each field
(issue 16: population -5, 1.5, 1E+999999, a 100,000-digit number and a 1 MB text were all stored)."""

from __future__ import annotations

from typing import Any

import pytest

from kpi_core.catalogue import ContextField
from kpi_core.context import CONTEXT_TEXT_LIMIT, check_context
from kpi_core.measurements import LONGEST_SHOWN, parse_number

FIELDS = (
    ContextField(code="population", name_vi="Số lượng dân số", type="count"),
    ContextField(code="dt_budget_spending", name_vi="Tổng chi", type="number"),
    ContextField(code="online_share", name_vi="Tỷ lệ", type="percent"),
    ContextField(code="portal_url", name_vi="Cổng thông tin", type="text"),
    ContextField(code="has_ioc", name_vi="Có IOC", type="boolean"),
)


def refusal(raw: dict[str, Any]) -> list[tuple[str, str]]:
    values, errors = check_context(FIELDS, raw, "vn-dti-province")
    assert errors, f"stored {values}"
    return [(error.field, error.message) for error in errors]


@pytest.mark.parametrize(
    ("sent", "why"),
    [
        (-5, "cannot be negative"),
        ("1.5", "a count must be a whole number"),
        ("1E+999999", "is implausibly large (at most 1E+15)"),
        ("1" * 100_000, "is implausibly large (at most 1E+15)"),
        ("0." + "0" * 99_999 + "1", "is implausibly small (write 0, or a value of at least 1E-15)"),
        ("Infinity", "must be a finite number"),
        ("NaN", "must be a finite number"),
        (True, "must be a number"),
        ("1.000,5", "'1.000,5' is not a number"),
    ],
)
def test_a_count_is_whole_non_negative_and_bounded(sent: Any, why: str) -> None:
    assert refusal({"population": sent}) == [("values.population", why)]


def test_a_refused_value_is_repeated_at_most_in_part() -> None:
    ((field, message),) = refusal({"population": "x" * 1_000_000})
    assert field == "values.population"
    assert len(message) < LONGEST_SHOWN + 40 and message.startswith("'xxx") and "…" in message
    assert len(str(parse_number("9," + "9" * 100_000, "count"))) < 200


def test_a_text_is_text_and_bounded() -> None:
    assert refusal({"portal_url": "x" * (CONTEXT_TEXT_LIMIT + 1)}) == [
        ("values.portal_url", f"must be a text of at most {CONTEXT_TEXT_LIMIT} characters")
    ]
    assert refusal({"portal_url": 12}) == [("values.portal_url", "must be text")]
    assert refusal({"has_ioc": "yes"}) == [("values.has_ioc", "must be true or false")]


def test_a_share_is_a_fraction_and_an_amount_is_not_negative() -> None:
    assert refusal({"online_share": "1.2"}) == [
        ("values.online_share", 'a share is a fraction from 0 to 1 (write 0.45 or "45%")')
    ]
    assert refusal({"dt_budget_spending": "-0.5"}) == [("values.dt_budget_spending", "cannot be negative")]


def test_a_field_the_catalogue_does_not_declare_is_refused_by_name() -> None:
    assert refusal({"mayor": "x", "population": 5}) == [
        ("values.mayor", "vn-dti-province has no general-information field mayor")
    ]


def test_valid_values_are_stored_as_exact_text_and_a_count_as_its_digits() -> None:
    sent = {
        "population": "1.2E+6",
        "dt_budget_spending": "1250.50",
        "online_share": "45%",
        "portal_url": "https://gialai.gov.vn",
        "has_ioc": True,
    }
    values, errors = check_context(FIELDS, sent, "vn-dti-province")
    assert errors == []
    assert values == {
        "population": "1200000",
        "dt_budget_spending": "1250.50",
        "online_share": "0.45",
        "portal_url": "https://gialai.gov.vn",
        "has_ioc": True,
    }


def test_no_value_at_all_is_refused() -> None:
    assert refusal({}) == [("values", "at least one field")]
