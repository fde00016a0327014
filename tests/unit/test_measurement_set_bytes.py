"""A measurement set's checks may get faster, never different: the same rows give the same events, byte
for byte (their canonical envelopes, hashes and chain), and the same refusals (a set's stored summary
repeats them). The digests below were taken before the checks were made faster (issue 13)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from tests.bench.full_year import catalogue as provincial
from tests.bench.full_year import year_of_measurements
from tests.e2e.conftest import bundled_peer_group

from kpi_core.audit import chain_sha256, event_sha256
from kpi_core.catalogue import Catalogue
from kpi_core.events import EventEnvelope
from kpi_core.measurement_sets import SetRow, SetScope, check_rows, decide_set
from kpi_core.units import UnitRegistry
from kpi_ingest.adapters.event_store import canonical_envelope

# every scored component of the provincial catalogue (every rule kind) for the 63 provinces of 2024
EVENTS_SHA256 = "bf372216e3a9676cbe4df192c196c946ac50e82bfbe97ec94f1ce945caf83178"
REFUSALS_SHA256 = "54294d4920fa5e3c1a7a31f3d8f9fa575c291bd03b801bc021db3ef0e62f1617"


def _rows(catalogue: Catalogue) -> list[SetRow]:
    """The year, with some rows broken in place: a number for a yes/no, an unknown input, an unknown unit,
    an unknown indicator, a pillar, a share above one and a zero divisor."""
    rows = [{key: body[key] for key in ("unit_id", "indicator", "inputs")} for body in year_of_measurements(catalogue)]
    ratios = {node.code for node in catalogue.leaves() if node.rule is not None and node.rule.kind == "ratio"}
    first, second = [index for index, row in enumerate(rows) if row["indicator"] in ratios][:2]
    names = sorted(rows[first]["inputs"])
    rows[first] = {**rows[first], "inputs": {name: "1" if index else "5" for index, name in enumerate(names)}}
    rows[second] = {**rows[second], "inputs": dict.fromkeys(rows[second]["inputs"], "0")}
    for index, change in zip(range(10, 60, 10), BROKEN, strict=True):
        rows[index] = {**rows[index], **change}
    return [SetRow(index, row["unit_id"], row["indicator"], row["inputs"]) for index, row in enumerate(rows, start=2)]


BROKEN: list[dict[str, Any]] = [
    {"inputs": {"a": "-1"}},  # a yes/no input
    {"inputs": {"nope": "1"}},
    {"unit_id": "atlantis"},
    {"indicator": "9.99"},
    {"indicator": "1", "inputs": {}},
]


def test_a_set_gives_the_same_events_and_refusals_byte_for_byte() -> None:
    catalogue = provincial()
    registry = UnitRegistry({"provinces": bundled_peer_group("provinces")})
    scope = SetScope(catalogue.id, catalogue.version, 2024)
    checked, refused = check_rows(_rows(catalogue), scope, catalogue, registry, "bench-reporter")
    decision = decide_set(checked, refused, {}, frozenset(), "partial")
    shown_time = EventEnvelope(
        id="", type="", subject="", time=datetime(2024, 12, 31, tzinfo=UTC), dataschema="", sequence=0, data={}
    ).model_dump(mode="json")["time"]
    events, chained = hashlib.sha256(), "0" * 64
    for sequence, decided in enumerate(decision.accepted, start=1):
        canonical = canonical_envelope(decided.event, f"event-{sequence}", sequence, shown_time)
        chained = chain_sha256(chained, event_sha256(canonical))
        events.update(canonical)
    events.update(chained.encode())
    refusals = hashlib.sha256("\n".join(f"{e.row}|{e.field}|{e.message}" for e in decision.refused).encode())
    assert (len(decision.accepted), len({error.row for error in decision.refused})) == (6_986, 7)
    assert events.hexdigest() == EVENTS_SHA256
    assert refusals.hexdigest() == REFUSALS_SHA256
