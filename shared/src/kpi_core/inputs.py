"""What scoring reads: a measurement's inputs as exact values, and the event-to-inputs adapter.

Measurements (checking what a unit submits) and scoring (turning inputs into points) both use
these types; neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from kpi_core.catalogue import Node
from kpi_core.events import MeasurementRecorded

InputValue = Decimal | bool | str


@dataclass(frozen=True)
class RecordedInputs:
    """The latest measurement of one indicator for one unit and period."""

    indicator: str
    inputs: Mapping[str, InputValue]
    event_id: str
    sequence: int
    not_applicable_reason: str | None = None
    previous_event_id: str | None = None  # where an input taken from the previous period came from


def typed_inputs(node: Node | None, stored: Mapping[str, str | bool]) -> dict[str, InputValue]:
    """Inputs as an event stores them (numbers as strings) back to exact values, by declared type."""
    verbatim = _verbatim(node)
    typed: dict[str, InputValue] = {}
    for name, value in stored.items():
        if isinstance(value, bool) or name in verbatim:
            typed[name] = value
        else:
            typed[name] = Decimal(value)
    return typed


_VERBATIM: dict[int, tuple[Node, frozenset[str]]] = {}


def _verbatim(node: Node | None) -> frozenset[str]:
    """The inputs a node declares as category, text or yes/no (kept as they are, not numbers); made
    once per node object (kept beside it, so a reused id never finds another's)."""
    if node is None:
        return frozenset()
    found = _VERBATIM.get(id(node))
    if found is None or found[0] is not node:
        if len(_VERBATIM) > 65_536:
            _VERBATIM.clear()
        declared = {spec.name: spec.type for spec in reversed(node.inputs)}  # the first of a name counts
        names = frozenset(name for name, kind in declared.items() if kind in ("category", "text", "boolean"))
        found = _VERBATIM[id(node)] = node, names
    return found[1]


def recorded(node: Node | None, event: MeasurementRecorded, event_id: str, sequence: int) -> RecordedInputs:
    """One measurement event as scoring reads it."""
    inputs = typed_inputs(node, event.inputs)
    return RecordedInputs(event.indicator, inputs, event_id, sequence, event.not_applicable_reason)
