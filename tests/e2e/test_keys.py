"""Keys managed without restarts, over HTTP and the CLI, on the real system: granted, listed,
rotated, revoked and expired as events that every service applies within about a second; and four
eyes on publication. Every test here failed on the old main (keys from a file, read at start)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningSystem, transport_from

pytestmark = pytest.mark.e2e
PROVINCE_2024 = {"catalogue_id": "vn-dti-province", "catalogue_version": "1.0", "period": 2024}
CARD = {"catalogue": "vn-dti-province", "version": "1.0", "period": 2024}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def grant(running: RunningSystem, body: dict[str, Any]) -> httpx.Response:
    return running.ingest.post("/v1/keys", json=body, headers=bearer(running.keys["admin"]))


def measurement(secret: str, running: RunningSystem, unit: str, idempotency_key: str) -> httpx.Response:
    body = {**PROVINCE_2024, "unit_id": unit, "indicator": "1.6", "inputs": {"a": True}}
    return running.ingest.post(
        "/v1/measurements", json=body, headers={**bearer(secret), "Idempotency-Key": idempotency_key}
    )


ADDRESSES = itertools.count(1)


def client_from_a_fresh_address(base_url: httpx.URL) -> httpx.Client:
    """Each poll from its own loopback address: polling with a key not (or no longer) in force counts
    as failed authentications, which the services rate-limit per address."""
    number = next(ADDRESSES)
    address = f"127.8.{number // 250}.{number % 250 + 1}"
    return httpx.Client(base_url=base_url, transport=transport_from(address), timeout=10)


def statuses_within(running: RunningSystem, secret: str, wanted: int, timeout: float = 5.0) -> float:
    """Seconds until scoring and reporting, which learn keys from the stream, both answer `wanted`."""
    started = time.monotonic()

    def answered() -> bool:
        with client_from_a_fresh_address(running.reporting.base_url) as reporting:
            card = reporting.get("/v1/units/gia-lai/scorecard", params=CARD, headers=bearer(secret))
        with client_from_a_fresh_address(running.scoring.base_url) as scoring:
            scores = scoring.get("/v1/units/gia-lai/scores", params=CARD, headers=bearer(secret))
        return card.status_code == scores.status_code == wanted

    running.wait_for(answered, timeout)
    return time.monotonic() - started


def test_a_granted_key_works_everywhere_at_once_and_a_revoked_one_nowhere(running: RunningSystem) -> None:
    granted = grant(running, {"id": "so-tttt-gia-lai", "roles": ["reporter"], "units": ["gia-lai"]})
    assert granted.status_code == 201, granted.text
    secret = granted.json()["secret"]
    assert measurement(secret, running, "gia-lai", "key-new").status_code == 201  # ingest, no restart
    assert statuses_within(running, secret, 200) < 3  # scoring and reporting learnt it from the stream
    assert measurement(secret, running, "da-nang", "key-other-unit").status_code == 403

    listed = running.ingest.get("/v1/keys", headers=bearer(running.keys["auditor"])).json()
    entry = next(key for key in listed if key["id"] == "so-tttt-gia-lai")
    assert (entry["roles"], entry["units"], entry["granted_by"], entry["revoked_at"]) == (
        ["reporter"],
        ["gia-lai"],
        "admin",
        None,
    )
    assert not any("secret" in key or "sha256" in key for key in listed)

    reason = {"reason": "Cán bộ chuyển công tác"}
    revoke = running.ingest.post("/v1/keys/so-tttt-gia-lai/revoke", json=reason, headers=bearer(running.keys["admin"]))
    assert revoke.status_code == 200, revoke.text
    refused = measurement(secret, running, "gia-lai", "key-revoked")
    assert refused.status_code == 401 and "unknown, revoked or expired" in refused.json()["detail"]
    assert statuses_within(running, secret, 401) < 3
    keyless = running.ingest.post("/v1/measurements", json={})
    assert keyless.status_code == 401 and "required" in keyless.json()["detail"]
    again = running.ingest.get("/v1/keys", headers=bearer(running.keys["admin"])).json()
    revoked = next(key for key in again if key["id"] == "so-tttt-gia-lai")
    assert (revoked["revoked_by"], revoked["revoke_reason"]) == ("admin", "Cán bộ chuyển công tác")


def test_ids_are_never_reused_and_bad_grants_name_the_field(running: RunningSystem) -> None:
    assert grant(running, {"id": "gia-lai", "roles": ["reporter"], "units": ["gia-lai"]}).status_code == 409
    bad_role = grant(running, {"id": "k-bad-role", "roles": ["superuser"], "units": ["gia-lai"]})
    assert bad_role.status_code == 422 and bad_role.json()["errors"][0]["field"].startswith("roles")
    unknown_unit = grant(running, {"id": "k-typo", "roles": ["reporter"], "units": ["gia-lia"]})
    assert unknown_unit.status_code == 422 and [e["field"] for e in unknown_unit.json()["errors"]] == ["units"]
    no_units = grant(running, {"id": "k-no-units", "roles": ["reporter"]})
    assert no_units.status_code == 422
    by_reporter = running.ingest.post(
        "/v1/keys", json={"id": "k-self", "roles": ["admin"]}, headers=bearer(running.keys["gia-lai"])
    )
    assert by_reporter.status_code == 403


def test_rotation_ends_the_old_secret_and_expiry_ends_a_key(running: RunningSystem) -> None:
    old = grant(running, {"id": "k-rotate", "roles": ["reporter"], "units": ["gia-lai"]}).json()["secret"]
    rotated = running.ingest.post("/v1/keys/k-rotate/rotate", headers=bearer(running.keys["admin"]))
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["secret"]
    assert new != old
    assert measurement(old, running, "gia-lai", "rotate-old").status_code == 401
    assert measurement(new, running, "gia-lai", "rotate-new").status_code == 201
    statuses_within(running, old, 401)
    statuses_within(running, new, 200)

    soon = datetime.now(UTC) + timedelta(seconds=5)  # a loaded machine's grant and first POST fit in it
    body = {"id": "k-expiring", "roles": ["reporter"], "units": ["gia-lai"], "expires_at": soon.isoformat()}
    expiring = grant(running, body)
    assert expiring.status_code == 201, expiring.text
    secret = expiring.json()["secret"]
    assert measurement(secret, running, "gia-lai", "expiring-1").status_code == 201
    assert datetime.now(UTC) < soon, "the first POST did not answer before the key expired"
    time.sleep((soon - datetime.now(UTC)).total_seconds() + 0.1)
    assert measurement(secret, running, "gia-lai", "expiring-2").status_code == 401


def test_the_cli_grants_through_the_same_path_and_refuses_in_one_line(running: RunningSystem) -> None:
    database = running.database_urls["ingest"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "kpi_launcher.cli", *args, "--database-url", database]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)

    created = cli("add-key", "cli-da-nang", "--roles", "reporter", "--units", "da-nang")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    running.wait_for(lambda: measurement(secret, running, "da-nang", "cli-key").status_code == 201)  # no restart
    for refused in (
        cli("add-key", "cli-da-nang", "--roles", "reporter", "--units", "da-nang"),  # the id exists
        cli("add-key", "cli-bad-role", "--roles", "boss", "--units", "da-nang"),
        cli("add-key", "cli-typo", "--roles", "reporter", "--units", "da-nag"),
        cli("revoke-key", "nobody", "--reason", "không có"),
    ):
        assert refused.returncode == 2
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "rotate" in cli("add-key", "cli-da-nang", "--units", "da-nang").stderr


def test_who_adjusted_may_not_publish_and_the_publication_records_both(running: RunningSystem) -> None:
    both = grant(running, {"id": "k-both", "roles": ["evaluator", "approver"], "peer_groups": ["provinces"]})
    assert both.status_code == 201, both.text
    secret = both.json()["secret"]
    assert measurement(running.keys["gia-lai"], running, "gia-lai", "four-eyes-self").status_code == 201
    adjustment = {
        **PROVINCE_2024,
        "unit_id": "gia-lai",
        "indicator": "1.6",
        "decision": "adjusted",
        "inputs": {"a": False},
        "reason": "Nghị quyết chưa ban hành trong kỳ",
    }
    headers = {**bearer(secret), "Idempotency-Key": "four-eyes-adjust"}
    assert running.ingest.post("/v1/verifications", json=adjustment, headers=headers).status_code == 201
    publication = {**PROVINCE_2024, "incomplete_reason": "Công bố thử nghiệm bốn mắt"}
    own = running.ingest.post(
        "/v1/publications", json=publication, headers={**bearer(secret), "Idempotency-Key": "four-eyes-own"}
    )
    assert own.status_code == 403 and own.json()["errors"][0]["field"] == "published_by"
    other = running.post("approver", "/v1/publications", publication, "four-eyes-other")
    assert other.status_code == 201, other.text
    recorded = other.json()["publication"]
    assert (recorded["adjusted_by"], recorded["published_by"]) == (["k-both"], "ubnd-approver")
    elsewhere = grant(running, {"id": "k-districts", "roles": ["evaluator"], "peer_groups": ["hcmc-districts"]})
    outside = {**adjustment, "decision": "accepted", "inputs": {}, "reason": None}
    refused = running.ingest.post(
        "/v1/verifications",
        json=outside,
        headers={**bearer(elsewhere.json()["secret"]), "Idempotency-Key": "outside-group"},
    )
    assert refused.status_code == 403 and refused.json()["errors"][0]["field"] == "catalogue_id"


def test_an_events_lineage_is_read_only_in_the_peer_groups_of_the_key(running: RunningSystem) -> None:
    body = {**PROVINCE_2024, "unit_id": "da-nang", "indicator": "1.5", "inputs": {"a": True, "b": 3}}
    sent = running.post("da-nang", "/v1/measurements", body, "lineage-scope")  # a score that changes
    assert sent.status_code == 201, sent.text
    sequence = sent.json()["sequence"]
    keys = {
        group: grant(running, {"id": f"k-lineage-{group}", "roles": ["evaluator"], "peer_groups": [group]}).json()
        for group in ("provinces", "hcmc-districts")
    }
    path = f"/v1/events/{sequence}/scores"
    running.wait_for(lambda: running.scoring.get(path).json() != [])  # scored (the default client is the auditor)

    def status(secret: str) -> int:
        with client_from_a_fresh_address(running.scoring.base_url) as scoring:
            return scoring.get(path, headers=bearer(secret)).status_code

    running.wait_for(lambda: status(keys["provinces"]["secret"]) == 200)
    assert {change["unit_id"] for change in running.scoring.get(path).json()} == {"da-nang"}
    running.wait_for(lambda: status(keys["hcmc-districts"]["secret"]) != 401)  # known to scoring
    assert status(keys["hcmc-districts"]["secret"]) == 403
