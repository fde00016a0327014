"""No poison event gets in (issue 15): each request that on the old main was stored (201) and then
stopped all delivery (a unit id that is no NATS subject token, a 9 MB text, a 3-million-digit
exponent) is refused before anything is stored, and what is accepted next still reaches reporting."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e
DISTRICTS = {"catalogue_id": "hcmc-dti-districts", "catalogue_version": "1.0", "period": 2024}
PROVINCES = {"catalogue_id": "vn-dti-province", "catalogue_version": "1.0", "period": 2024}


@pytest.mark.parametrize("unit", ["quan 1", "a..b", "quan-1\r\nX: y", "quan-1.>", "*"])
@pytest.mark.parametrize(
    ("key", "path", "extra"),
    [
        ("any-unit", "/v1/context", {"values": {"population": 100}}),
        ("evaluator", "/v1/evidence-requests", {"indicator": "3.3", "message": "Xin bổ sung minh chứng"}),
        ("evaluator", "/v1/periods/reopen", {"reason": "Gia hạn nộp"}),
        ("evaluator", "/v1/verifications", {"indicator": "3.3", "decision": "accepted"}),
    ],
)
def test_a_unit_id_that_is_no_subject_token_is_refused(
    running: RunningSystem, unit: str, key: str, path: str, extra: dict[str, Any]
) -> None:
    refused = running.post(key, path, {**DISTRICTS, "unit_id": unit, **extra}, f"poison-{path}-{unit!r}")
    assert refused.status_code == 422, refused.text
    assert "unit_id" in [error["field"] for error in refused.json()["errors"]]


def test_huge_texts_and_numbers_are_refused_and_the_stream_keeps_flowing(running: RunningSystem) -> None:
    log = running.ingest.get("/v1/events", params={"after": 0, "limit": 1000}, headers=admin(running)).json()
    before = log["next_after"]  # the head: fewer than 1000 events so far
    nine_mb = {**DISTRICTS, "unit_id": "quan-1", "values": {"portal_url": "x" * 9_000_000}}
    assert running.post("quan-1", "/v1/context", nine_mb, "poison-9mb").status_code == 413
    for exponent in ("1E-3000000", "1E-1000000", "1E+3000000"):
        body = {**PROVINCES, "unit_id": "gia-lai", "indicator": "5.12.2", "inputs": {"a": exponent}}
        refused = running.post("gia-lai", "/v1/measurements", body, f"poison-{exponent}")
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"].startswith("inputs"), refused.text
    after = running.ingest.get("/v1/events", params={"after": before}, headers=admin(running)).json()
    assert after["events"] == []  # nothing was stored
    good = {**PROVINCES, "unit_id": "gia-lai", "indicator": "1.6", "inputs": {"a": True}}
    accepted = running.post("gia-lai", "/v1/measurements", good, "after-the-poison")
    assert accepted.status_code == 201
    query = {"catalogue": "vn-dti-province", "version": "1.0", "period": 2024}
    running.wait_until_projected(accepted.json()["sequence"], query)


def admin(running: RunningSystem) -> dict[str, str]:
    return {"Authorization": f"Bearer {running.keys['admin']}"}
