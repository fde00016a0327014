"""The access policy's pure parts: key rings, scopes, the failure limiter, four eyes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from kpi_common.access import POLICY, may_read
from kpi_common.auth import ApiKey, KeyRing, hash_secret, new_secret, secret_prefix
from kpi_common.failure_limits import FailureLimiter
from kpi_core.assessment import adjusters, four_eyes_error
from kpi_core.events import MeasurementRecorded

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def key(key_id: str, *roles: str, units: tuple[str, ...] = ("*",), groups: tuple[str, ...] = ("*",)) -> ApiKey:
    return ApiKey(id=key_id, sha256=hash_secret(key_id), roles=roles, units=units, peer_groups=groups)  # type: ignore[arg-type]


def test_a_ring_knows_keys_in_force_only() -> None:
    expired = ApiKey(id="old", sha256=hash_secret("old"), roles=("reporter",), expires_at=NOW - timedelta(seconds=1))
    ring = KeyRing([key("a", "reporter"), expired])
    assert ring.authenticate("a", NOW) is not None
    assert ring.authenticate("old", NOW) is None
    assert ring.authenticate("nobody", NOW) is None


def test_only_the_id_part_of_a_secret_is_ever_logged() -> None:
    random_part = "pO5mnSH5wx5ZSeQyOcKcDOU9Jnj_Gz4O"  # token_urlsafe can put an underscore in it
    assert secret_prefix(f"kpi_so-tttt_gia-lai_{random_part}") == "kpi_so-tttt_gia-lai"
    for _ in range(50):
        secret = new_secret("admin")
        assert secret_prefix(secret) == "kpi_admin" and secret[len("kpi_admin_") :] not in secret_prefix(secret)
    assert secret_prefix("hunter2-plain") == "hunt…"


def test_unpublished_reads_by_role_peer_group_and_unit() -> None:
    reporter = key("r", "reporter", units=("gia-lai",))
    evaluator = key("e", "evaluator", groups=("hcmc-districts",))
    auditor = key("a", "auditor")
    assert may_read(reporter, "provinces", "gia-lai")
    assert not may_read(reporter, "provinces", "da-nang")
    assert not may_read(reporter, "provinces", None)  # a ranking shows every unit
    assert may_read(evaluator, "hcmc-districts", None)
    assert not may_read(evaluator, "provinces", "gia-lai")
    assert may_read(auditor, "provinces", None)


def test_repeated_failures_from_one_address_wait_for_the_window() -> None:
    clock = [0.0]
    limiter = FailureLimiter(limit=3, window=60.0, clock=lambda: clock[0])
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1") is None
        limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 60
    assert limiter.retry_after("10.0.0.2") is None
    clock[0] = 60.5
    assert limiter.retry_after("10.0.0.1") is None


def test_who_adjusted_may_not_approve_unless_allowed() -> None:
    common = {"catalogue_id": "c", "catalogue_version": "1", "period": 2024, "unit_id": "u", "indicator": "1"}
    events = [
        MeasurementRecorded(**common, stage="verification", inputs={}, submitted_by="eva", decision="adjusted"),
        MeasurementRecorded(**common, stage="verification", inputs={}, submitted_by="bob", decision="accepted"),
    ]
    assert adjusters(events) == ("eva",)
    assert four_eyes_error("eva", ("eva",), self_approval_allowed=False) is not None
    assert four_eyes_error("eva", ("eva",), self_approval_allowed=True) is None
    assert four_eyes_error("ann", ("eva",), self_approval_allowed=False) is None


def test_the_readme_shows_the_policy_as_written_in_code() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for rule in POLICY:
        assert f"| {rule.service} | `{rule.method} {rule.path}` | {rule.who} | {rule.why} |" in readme, rule
