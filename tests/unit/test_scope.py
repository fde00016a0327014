"""The scope of a score or a report as a value: its columns, its neighbours, its use as a key."""

from __future__ import annotations

import pytest

from kpi_core.scope import SCOPE_COLUMNS, Scope

SCOPE = Scope(catalogue_id="vn-dti-province", version="1.0", period=2024, stage="verification")


def test_columns_name_the_scope_as_the_tables_do_in_their_order():
    assert list(SCOPE.columns().items()) == [
        ("catalogue_id", "vn-dti-province"),
        ("version", "1.0"),
        ("period", 2024),
        ("stage", "verification"),
    ]
    assert tuple(SCOPE.columns()) == SCOPE_COLUMNS


def test_period_columns_leave_the_stage_out():
    assert SCOPE.period_columns() == {"catalogue_id": "vn-dti-province", "version": "1.0", "period": 2024}


def test_the_previous_scope_is_the_period_before_in_the_same_catalogue_version_and_stage():
    assert SCOPE.previous() == Scope("vn-dti-province", "1.0", 2023, "verification")


def test_at_stage_changes_only_the_stage():
    assert SCOPE.at_stage("self_assessment") == Scope("vn-dti-province", "1.0", 2024, "self_assessment")
    assert SCOPE.stage == "verification"


def test_equal_scopes_are_one_key():
    cache = {SCOPE: "cached"}
    assert cache[Scope("vn-dti-province", "1.0", 2024, "verification")] == "cached"
    assert SCOPE.previous() not in cache


def test_a_scope_cannot_be_changed_in_place():
    with pytest.raises(AttributeError):
        SCOPE.period = 2025  # type: ignore[misc]


def test_the_following_scope_is_the_period_after_and_undoes_the_previous():
    assert SCOPE.following() == Scope("vn-dti-province", "1.0", 2025, "verification")
    assert SCOPE.previous().following() == SCOPE
