"""No CSV the services write opens as a formula (CSV injection): text starting with `=`, `+`, `-`, `@`, a
tab or a return is written after a `'` (OWASP), as in the templates; numbers, negative ones too, are
written as they are, so a spreadsheet sums them and SDMX readers read them as numbers."""

from __future__ import annotations

import asyncio
import csv
import io
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from tests.e2e.conftest import bundled_peer_group

from kpi_common.cells import inert, starts_a_formula
from kpi_core.scope import Scope
from kpi_core.units import UnitRegistry
from kpi_reporting import reports, sdmx
from kpi_reporting.entrypoints.api.routes import exports

HOSTILE = ['=HYPERLINK("https://evil.example","x")', "+1+cmd|' /C calc'!A0", "-2+3+cmd", "@SUM(A1:A9)", "\tx", "\rx"]
SCOPE = Scope("hcmc-dti-districts", "1.0", 2024, "self_assessment")


@pytest.mark.parametrize("text", HOSTILE)
def test_text_that_starts_a_formula_is_written_after_a_quote(text: str) -> None:
    assert starts_a_formula(text) and inert(text) == "'" + text


@pytest.mark.parametrize("value", ["-2.50", "+3", "-0.5", "-1E-3", ".5", "30.00", "Quận 6", "62/63", -3, Decimal("-1")])
def test_numbers_and_plain_text_are_written_as_they_are(value: object) -> None:
    assert inert(value) == value


def table(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(bytes(response.body).decode("utf-8-sig"))))


def test_the_ranking_csv_writes_a_hostile_unit_name_as_text_and_a_negative_change_as_a_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [
        {
            "rank_label": "1/2",
            "unit_id": "quan-1",
            "unit_name_vi": HOSTILE[0],
            "total": "-2.50",
            "pillars": {"1": "-1"},
        },
        {"rank_label": "2/2", "unit_id": "@quan-2", "unit_name_vi": "Quận 2", "total": "3.00", "pillars": {"1": "3"}},
    ]

    async def rankings(*_: Any) -> dict[str, Any]:
        return {"rankings": rows, "pillars": [{"code": "1", "name_vi": "=Chuyển đổi"}]}

    monkeypatch.setattr(reports, "rankings", rankings)
    answer = asyncio.run(exports.export_rankings(reader=None, scope=SCOPE, reporting=None))  # type: ignore[arg-type]
    header, first, second = table(answer)
    assert header[-1] == "1. =Chuyển đổi"  # not at the start of its cell: no formula
    assert first == ["1/2", "quan-1", "'" + HOSTILE[0], "-2.50", "-1"]
    assert second[:2] == ["2/2", "'@quan-2"]


def test_the_scorecard_csv_writes_hostile_agencies_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    node = {"code": "1.1", "name_vi": "-Chỉ số", "points": "-0.50", "lead_agency": "=cmd", "cooperating_agencies": []}
    card = {"unit_id": "quan-1", "unit_name_vi": "+Quận", "pillars": [node], "max_points": "10", "total": "-0.50"}
    card["previous_period_total"] = None

    async def scorecard(*_: Any) -> dict[str, Any]:
        return card

    monkeypatch.setattr(reports, "scorecard", scorecard)
    answer = asyncio.run(exports.export_scorecard(reader=None, unit="quan-1", scope=SCOPE, reporting=None))  # type: ignore[arg-type]
    rows = table(answer)
    columns = [key for key, _ in exports.SCORECARD_COLUMNS]
    line = dict(zip(columns, rows[1], strict=True))
    assert (line["name_vi"], line["points"], line["lead_agency"]) == ("'-Chỉ số", "-0.50", "'=cmd")
    assert rows[-1][-1] == "'+Quận"


def measurement(indicator: str, inputs: str, **changes: Any) -> Any:
    row = {"unit_id": "quan-1", "indicator": indicator, "inputs": inputs, "decision": None}
    return SimpleNamespace(**{**row, "not_applicable_reason": None, "evidence_count": 1, **changes})


def test_sdmx_inputs_keep_numbers_as_numbers_and_text_inert() -> None:
    """SDMX-CSV values that are numbers stay numbers (negative too); text that would start a formula is
    written after a `'`; a yes/no is true or false; a not-applicable declaration is one INPUT _Z."""
    registry = UnitRegistry({"hcmc-districts": bundled_peer_group("hcmc-districts")})
    measurements = [
        measurement("1.1", '{"a": "=HYPERLINK(1)", "b": "-3", "c": true}'),
        measurement("2.1", "{}", not_applicable_reason="Không có", evidence_count=None),
        measurement("3.3", '{"a": "0.85"}', decision="adjusted"),
    ]
    text = sdmx.sdmx_csv(sdmx.INPUT_COLUMNS, sdmx.input_rows(measurements, SCOPE, registry))
    found = list(csv.DictReader(io.StringIO(text)))
    shown = [
        (row["INDICATOR"], row["INPUT"], row["OBS_VALUE"], row["OBS_STATUS"], row["EVIDENCE_COUNT"]) for row in found
    ]
    assert shown == [
        ("1.1", "a", "'=HYPERLINK(1)", "submitted", "1"),
        ("1.1", "b", "-3", "submitted", "1"),
        ("1.1", "c", "true", "submitted", "1"),
        ("2.1", "_Z", "", "not_applicable_claimed", ""),
        ("3.3", "a", "0.85", "adjusted", "1"),
    ]
    assert {row["UNIT_NAME"] for row in found} == {"Quận 1"} and not text.startswith("\ufeff")
