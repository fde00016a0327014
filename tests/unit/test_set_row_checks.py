"""A set's rows are checked without a command a row and with each unit's place asked once, and are
still checked exactly as a single measurement is: the same event, the same refusals, row by row."""

from __future__ import annotations

from typing import Any

import pytest

from kpi_core.catalogue import Catalogue, parse_catalogue
from kpi_core.commands import RecordMeasurement
from kpi_core.events import Evidence
from kpi_core.measurement_sets import RowError, SetRow, SetScope, check_rows
from kpi_core.recording import measurement_event
from kpi_core.refusals import Refused
from kpi_core.units import UnitRegistry, parse_peer_group
from kpi_ingest.adapters.catalogue_files import bundled_catalogue_documents, bundled_peer_group_documents

SCOPE = SetScope("hcmc-dti-districts", "1.0", 2024)


@pytest.fixture(scope="module")
def districts() -> Catalogue:
    return parse_catalogue(next(d for d in bundled_catalogue_documents() if d["id"] == "hcmc-dti-districts"))


@pytest.fixture(scope="module")
def registry() -> UnitRegistry:
    return UnitRegistry({group.id: group for group in map(parse_peer_group, bundled_peer_group_documents())})


ROWS: list[dict[str, Any]] = [
    {"unit_id": "quan-1", "indicator": "3.3", "inputs": {"a": "81%"}},
    {"unit_id": "atlantis", "indicator": "3.3", "inputs": {"a": "0.5"}},
    {"unit_id": "atlantis", "indicator": "1.1", "inputs": {"a": "deputy"}},
    {"unit_id": "quan-1", "indicator": "9.99", "inputs": {}},
    {"unit_id": "quan-1", "indicator": "1.1", "inputs": {"a": "nobody"}},
    {"unit_id": "quan-3", "indicator": "3.3", "not_applicable_reason": "không áp dụng", "evidence": ()},
    {
        "unit_id": "quan-3",
        "indicator": "1.1",
        "inputs": {"a": "deputy"},
        "evidence": (Evidence(title="Quyết định 12", date="2024-03-01"),),
    },
    {"unit_id": "quan-1", "indicator": "3.3", "inputs": {"a": "0.5"}},  # repeats the first row
]


def _single(row: dict[str, Any], catalogue: Catalogue, registry: UnitRegistry) -> Any:
    """What `POST /v1/measurements` makes of the same row: its event, or its refusals."""
    command = RecordMeasurement(
        catalogue_id=SCOPE.catalogue_id,
        catalogue_version=SCOPE.catalogue_version,
        period=SCOPE.period,
        idempotency_key="k",
        submitted_by="reporter",
        **row,
    )
    try:
        return measurement_event(command, catalogue, registry)
    except Refused as refusal:
        return [(error.field, error.message) for error in refusal.errors]


def test_every_row_is_checked_as_a_single_measurement_is(districts: Catalogue, registry: UnitRegistry) -> None:
    rows = [SetRow(number, **row) for number, row in enumerate(ROWS, start=2)]
    checked, refused = check_rows(rows, SCOPE, districts, registry, "reporter")
    by_row: dict[int, Any] = {row.row: row.event for row in checked}
    for error in refused:
        by_row.setdefault(error.row, []).append((error.field, error.message))
    for number, row in enumerate(ROWS[:-1], start=2):
        assert by_row[number] == _single(row, districts, registry), row
    assert by_row[len(ROWS) + 1] == [("indicator", "repeats row 2 (quan-1, 3.3)")]
    # the unknown unit is refused on each of its rows, with the single measurement's words
    atlantis = [error for error in refused if error.row in (3, 4)]
    assert [error.field for error in atlantis] == ["unit_id", "unit_id"]
    assert atlantis[0].message == atlantis[1].message


def test_a_file_row_and_a_refused_row_pass_through_in_order(districts: Catalogue, registry: UnitRegistry) -> None:
    early = RowError(2, "period", "this set is for 2024; a set holds one catalogue version and period")
    checked, refused = check_rows(
        [early, SetRow(3, "quan-1", "3.3", {"a": "0,81"})], SCOPE, districts, registry, "reporter"
    )
    assert refused == [early] and checked[0].event.inputs == {"a": "0.81"}
