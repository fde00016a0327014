"""The replay helper finds, for every rule of every bundled points catalogue, inputs that score exactly."""

from __future__ import annotations

from fractions import Fraction

import pytest

from kpi_core.catalogue import Catalogue
from kpi_core.inputs import RecordedInputs, typed_inputs
from kpi_core.measurements import check_inputs
from kpi_core.scoring import score_period
from tests.catalogues.conftest import bundled_documents
from tests.reproduce import Unreachable, inputs_for

POINTS_CATALOGUES = sorted(name for name, document in bundled_documents().items() if document["kind"] == "points")


@pytest.mark.parametrize("name", POINTS_CATALOGUES)
def test_every_reachable_score_of_every_component_is_reproduced_exactly(
    name: str, catalogues: dict[str, Catalogue]
) -> None:
    catalogue = catalogues[name]
    for node in catalogue.leaves():
        if not node.scored or node.max_points is None:
            continue
        for target in (
            Fraction(0),
            Fraction(node.max_points) / 3,
            Fraction(node.max_points) / 2,
            Fraction(node.max_points),
        ):
            try:
                submission = inputs_for(node, target)
            except Unreachable:
                continue
            units = {"unit": submission.inputs, **submission.peers}
            period = {}
            for unit, raw in units.items():
                checked, errors = check_inputs(node, raw)
                assert errors == [], (node.code, target, raw, errors)
                stored = {key: value if isinstance(value, bool) else str(value) for key, value in checked.items()}
                period[unit] = {node.code: RecordedInputs(node.code, typed_inputs(node, stored), "e", 1)}
            scored = score_period(catalogue, period)["unit"].indicators[node.code]
            assert scored.points == target, (node.code, target, submission, scored.formula)
