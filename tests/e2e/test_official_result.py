"""Gia Lai's official 2022 DTI result (plan 3015/KH-UBND, seed 004) reproduced through the API.

For every component with a printed 2022 score, inputs that yield exactly that score are posted
(peers too, where a rule compares provinces). The pillar totals the scoring and reporting services
then report are compared with the totals 004 prints; where the document contradicts itself, the
catalogue's recorded decision says what the right total is.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from kpi_core.catalogue import Catalogue, parse_catalogue
from tests.catalogues.conftest import bundled_documents
from tests.e2e.conftest import RunningSystem
from tests.reproduce import inputs_for

pytestmark = pytest.mark.e2e
SCOPE = {"catalogue": "vn-dti-province", "version": "1.0", "period": 2022}
# `inputs_for` names the peers a peer-relative rule needs by role; here they are registered provinces of 2022
# (only a unit of the peer group may report). Which provinces does not matter: only their inputs do.
PEERS = {"peer-best": "ha-noi", "peer-low": "kon-tum"}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return parse_catalogue(bundled_documents()["vn-dti-province@1.0"])


def post(system: RunningSystem, key: str, unit: str, indicator: str, inputs: dict[str, Any]) -> int:
    body = {"catalogue_id": "vn-dti-province", "catalogue_version": "1.0", "period": 2022, "unit_id": unit}
    body |= {"indicator": indicator, "inputs": inputs}
    response = system.post_measurement(key, body, f"gia-lai-2022-{unit}-{indicator}")
    assert response.status_code == 201, (indicator, inputs, response.text)
    return int(response.json()["sequence"])


def test_gia_lai_2022_pillar_totals_are_reproduced(running: RunningSystem, catalogue: Catalogue) -> None:
    reference = catalogue.reference_results[0].model_dump()
    printed: dict[str, str] = reference["components"]
    last = 0
    for node in catalogue.leaves():
        if not node.scored or node.code not in printed:
            continue
        submission = inputs_for(node, Fraction(Decimal(printed[node.code])))
        last = post(running, "gia-lai", "gia-lai", node.code, submission.inputs)
        for peer, inputs in submission.peers.items():
            last = post(running, "any-unit", PEERS[peer], node.code, inputs)
    rankings = running.wait_until_projected(last, SCOPE)
    gia_lai = next(row for row in rankings["rankings"] if row["unit_id"] == "gia-lai")
    # ranked among the 63 provinces of 2022, as 004 ranks it ("62/63"); the other provinces' scores are not posted
    assert len(rankings["rankings"]) == 63 and gia_lai["rank_label"].endswith("/63")
    defects = {item.node: item for item in catalogue.defects if item.field == "reference_score"}
    checked = []
    for pillar, official in reference["pillars"].items():
        components = sum(
            (Decimal(printed[kid.code]) for kid in catalogue.children_of(pillar) if kid.code in printed), Decimal(0)
        )
        served = Decimal(gia_lai["pillars"][pillar])
        assert served == components, (pillar, served, components)  # the service adds up what 004 prints
        if pillar in defects:
            # 004 contradicts itself here: the catalogue records the printed total and why it differs
            assert served != Decimal(official["points"])
            assert official["points"] in defects[pillar].source_text
            assert f"{components:.2f}" in (defects[pillar].used or "")
        else:
            assert served == Decimal(official["points"]), (pillar, served, official)
        checked.append(pillar)
    assert checked == ["1", "2", "3", "4", "5", "6", "7", "8"]
    running.wait_for(
        lambda: running.scoring.get("/v1/units/gia-lai/scores/*", params=SCOPE).json().get("as_of_sequence", 0) >= last
    )
    running.wait_for(
        lambda: (
            running.scoring.get("/v1/units/gia-lai/scores/1", params=SCOPE).json().get("points")
            == gia_lai["pillars"]["1"]
        )
    )
    for pillar in checked:
        assert (
            running.scoring.get(f"/v1/units/gia-lai/scores/{pillar}", params=SCOPE).json()["points"]
            == gia_lai["pillars"][pillar]
        )
