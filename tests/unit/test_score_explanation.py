"""The stored explanation of a score is the JSON of `explain_indicator`, byte for byte, however it
is serialised (the rule's part is serialised once per catalogue and spliced in)."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction

import pytest

from kpi_core.catalogue import parse_catalogue
from kpi_core.scoring import IndicatorScore, PeerStats
from kpi_ingest.adapters.catalogue_files import bundled_catalogue_documents
from kpi_scoring.service_layer.projection import _RULE_SLOT, explain_indicator, explanation_json

CATALOGUES = [parse_catalogue(document) for document in bundled_catalogue_documents()]


def _scores(code: str) -> list[IndicatorScore]:
    peer = PeerStats(Fraction(1, 3), Fraction(9, 2), "e-min", "e-max")
    return [
        IndicatorScore(code, "missing", None, Fraction(2)),
        IndicatorScore(
            code,
            "scored",
            Fraction(5, 3),
            Fraction(2),
            value=Fraction(2, 7),
            formula='(1)/(3) = 0,3333 "trích dẫn"',
            inputs={"a": Decimal("1.5"), "b": True, "c": _RULE_SLOT, "d": f'"{_RULE_SLOT}"', "e": "Có"},
            event_id="e-1",
            sequence=42,
            peer=peer,
            previous_event_id="e-0",
        ),
    ]


@pytest.mark.parametrize("catalogue", CATALOGUES, ids=lambda catalogue: f"{catalogue.id}@{catalogue.version}")
def test_the_spliced_explanation_is_the_json_of_the_explanation(catalogue) -> None:  # type: ignore[no-untyped-def]
    leaves = [leaf for leaf in catalogue.leaves() if leaf.scored]
    assert leaves
    for leaf in leaves:
        for score in _scores(leaf.code):
            expected = json.dumps(explain_indicator(catalogue, score), ensure_ascii=False, sort_keys=True)
            assert explanation_json(catalogue, score) == expected
            assert json.loads(expected)["rule"] == (leaf.rule.model_dump(mode="json") if leaf.rule else None)
