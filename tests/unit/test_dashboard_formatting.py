"""The dashboard's numbers: Vietnamese by default (decimal comma, dots between thousands), English on
request, digit for digit as the read model answered them."""

from __future__ import annotations

import pytest

from kpi_reporting.dashboard.formatting import number, rank_change, share, signed
from kpi_reporting.dashboard.i18n import LABELS, language, translator


@pytest.mark.parametrize(
    ("value", "vi", "en"),
    [
        ("812.45", "812,45", "812.45"),
        ("1000.00", "1.000,00", "1,000.00"),
        ("1234567", "1.234.567", "1,234,567"),
        ("0", "0", "0"),
        ("0.0125", "0,0125", "0.0125"),
        ("-2.50", "−2,50", "−2.50"),
        ("-1000", "−1.000", "−1,000"),
        (1500000, "1.500.000", "1,500,000"),
        ("100", "100", "100"),
    ],
)
def test_numbers_are_written_as_each_language_writes_them(value: object, vi: str, en: str) -> None:
    assert number(value) == number(value, "vi") == vi
    assert number(value, "en") == en


def test_no_value_is_a_dash_and_text_stays_text() -> None:
    assert number(None) == number("") == "–"
    assert number("Sở TT&TT") == "Sở TT&TT"
    assert number(True) == "True"


def test_a_change_carries_its_sign_and_zero_none() -> None:
    assert signed("2.50") == "+2,50"
    assert signed("-10.00") == "−10,00"
    assert signed("0.00") == "0,00"
    assert signed(None) == "–"
    assert signed("1234.5", "en") == "+1,234.5"


def test_places_gained_lost_and_kept() -> None:
    assert [rank_change(n) for n in (2, -3, 0, None)] == ["▲2", "▼3", "=", "–"]


def test_a_share_is_a_whole_percentage_in_each_languages_spacing() -> None:
    assert share(0.456) == "46 %"
    assert share(0.456, "en") == "46%"
    assert share(1.0) == "100 %"


def test_every_label_has_both_languages_and_vietnamese_is_the_default() -> None:
    assert all(vi and en for vi, en in LABELS.values())
    assert language(None) == language("fr") == "vi" and language("en") == "en"
    assert translator("vi")("rankings") == "Xếp hạng" and translator("en")("rankings") == "Rankings"
    assert translator("en")("no such label") == "no such label"
