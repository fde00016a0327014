"""Builders for the unit tests of the pure core: catalogues, nodes and recorded inputs, no I/O."""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpi_core.catalogue import Catalogue, Node, parse_catalogue
from kpi_core.inputs import InputValue, RecordedInputs
from kpi_core.rules import Rule

MINI_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "mini-dti@1.0.yaml"
_MINI_DATA: dict[str, Any] = yaml.safe_load(MINI_PATH.read_text(encoding="utf-8"))


@pytest.fixture
def mini_data() -> dict[str, Any]:
    """A fresh copy of the mini catalogue's data, safe to break in a test."""
    return copy.deepcopy(_MINI_DATA)


@pytest.fixture
def mini(mini_data: dict[str, Any]) -> Catalogue:
    return parse_catalogue(mini_data)


def _make_node(rule: dict[str, Any] | None, max_points: str | None = "10", **inputs: str) -> Node:
    """A leaf node with the given rule; `inputs` maps each input name to its declared type."""
    return Node.model_validate(
        {
            "code": "9.9",
            "level": "component",
            "name_vi": "Chỉ số thử",
            "max_points": max_points,
            "inputs": [{"name": name, "type": kind} for name, kind in inputs.items()],
            "rule": rule,
        }
    )


def _make_rule(rule: dict[str, Any]) -> Rule:
    node = _make_node(rule)
    assert node.rule is not None
    return node.rule


def _recorded(indicator: str, sequence: int = 1, **inputs: InputValue | int | str) -> RecordedInputs:
    """Recorded inputs as scoring reads them: ints become Decimals; bools, Decimals and strings are kept."""
    typed: dict[str, InputValue] = {}
    for name, value in inputs.items():
        if isinstance(value, bool):
            typed[name] = value
        elif isinstance(value, int):
            typed[name] = Decimal(value)
        else:
            typed[name] = value
    return RecordedInputs(indicator, typed, event_id=f"ev-{indicator}-{sequence}", sequence=sequence)


@pytest.fixture(scope="session")
def make_node() -> Callable[..., Node]:
    return _make_node


@pytest.fixture(scope="session")
def make_rule() -> Callable[[dict[str, Any]], Rule]:
    return _make_rule


@pytest.fixture(scope="session")
def recorded() -> Callable[..., RecordedInputs]:
    return _recorded


@pytest.fixture(scope="session")
def shared_mini() -> Catalogue:
    """The parsed mini catalogue, shared (it is frozen) so hypothesis tests can use it."""
    return parse_catalogue(_MINI_DATA)
