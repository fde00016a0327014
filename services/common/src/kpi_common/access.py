"""Who may call what: the one access policy of the three services, enforced as typed dependencies.

`POLICY` is the table the README shows (and a test checks that every route is in it); the
dependencies below are how routes enforce it. A service puts its `KeyCache` in `app.state.keys`,
a `FailureLimiter` in `app.state.auth_failures` and, for scoped reads, a `peer_group_of(catalogue,
version)` coroutine in `app.state.peer_group_of`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from kpi_common.auth import ALL, ApiKey, KeyCache, secret_prefix
from kpi_common.failure_limits import FailureLimiter
from kpi_common.problems import Problem
from kpi_common.scope import CatalogueQuery, StageQuery, VersionQuery

log = logging.getLogger("kpi_ledger.access")
STAFF = ("evaluator", "approver", "auditor", "admin")  # see every unit of the peer groups they act in
AUDIT = ("auditor", "admin")  # see everything


@dataclass(frozen=True)
class Rule:
    service: str
    method: str
    path: str
    who: str
    why: str


PUBLIC = "anyone, no key"
POLICY: tuple[Rule, ...] = (
    Rule("all", "GET", "/healthz", PUBLIC, "load balancers and operators probe it"),
    Rule("all", "GET", "/readyz", PUBLIC, "load balancers and operators probe it"),
    Rule("all", "GET", "/metrics", PUBLIC, "Prometheus scrapes it: counts and positions, no unit's figures"),
    Rule("ingest", "GET", "/v1/catalogues", PUBLIC, "the official rules are public documents"),
    Rule("ingest", "GET", "/v1/catalogues/{catalogue_id}/versions/{version}", PUBLIC, "public documents"),
    Rule("ingest", "GET", "/v1/catalogues/{catalogue_id}/versions/{version}/indicators/{code}", PUBLIC, "public"),
    Rule("ingest", "GET", "/v1/peer-groups", PUBLIC, "who is ranked is public: official unit lists"),
    Rule("ingest", "GET", "/v1/peer-groups/{peer_group_id}", PUBLIC, "official unit lists"),
    Rule("ingest", "GET", "/v1/schemas", PUBLIC, "integrators need the contracts before they hold a key"),
    Rule("ingest", "GET", "/v1/schemas/{name}", PUBLIC, "the contracts"),
    Rule("ingest", "POST", "/v1/catalogues", "admin", "a catalogue version changes every ranking computed with it"),
    Rule("ingest", "POST", "/v1/peer-groups", "admin", "a unit list decides who is ranked"),
    Rule(
        "ingest",
        "POST",
        "/v1/measurements",
        "reporter of the unit (in a peer group of the key)",
        "a unit speaks for itself only; the verified stage is the evaluator's (403)",
    ),
    Rule("ingest", "POST", "/v1/context", "reporter of the unit", "a unit's general information is its own statement"),
    Rule(
        "ingest",
        "POST",
        "/v1/verifications",
        "evaluator of the peer group (and unit, if the key names units)",
        "the verified result is the Department's (003 §II.2.b)",
    ),
    Rule("ingest", "POST", "/v1/evidence-requests", "evaluator of the peer group and unit", "part of verifying"),
    Rule("ingest", "POST", "/v1/periods/reopen", "evaluator of the peer group and unit", "part of verifying"),
    Rule(
        "ingest",
        "POST",
        "/v1/periods/close",
        "evaluator of the peer group (for every unit), or admin",
        "ends submissions for all units",
    ),
    Rule(
        "ingest",
        "POST",
        "/v1/publications",
        "approver of the peer group, not the one who adjusted (four eyes)",
        "publishing freezes the official ranking; who adjusted may not approve it",
    ),
    Rule("ingest", "GET", "/v1/events", "auditor, admin", "the whole log: every unit, unpublished figures, key grants"),
    Rule("ingest", "GET", "/v1/events/{sequence}", "auditor, admin", "one event of the whole log"),
    Rule("ingest", "GET", "/v1/audit/verify", "auditor, admin", "the proof of the whole log"),
    Rule("ingest", "POST", "/v1/audit/checkpoints", "admin", "signs with the operator's key"),
    Rule("ingest", "GET", "/v1/keys", "admin, auditor", "who was granted what, when (no secrets)"),
    Rule("ingest", "POST", "/v1/keys", "admin", "granting access"),
    Rule("ingest", "POST", "/v1/keys/{key_id}/rotate", "admin", "granting access"),
    Rule("ingest", "POST", "/v1/keys/{key_id}/revoke", "admin", "ending access"),
    Rule("ingest", "GET", "/v1/admin/withheld", "admin", "operating the relay: the events it could not publish"),
    Rule(
        "reporting",
        "GET",
        "/v1/rankings",
        "stage=published: anyone; otherwise evaluator, approver of the peer group (for every unit), auditor, admin",
        "published rankings are public; an unpublished ranking shows every unit's figures, so not to a reporter",
    ),
    Rule("reporting", "GET", "/v1/rankings.csv", "as /v1/rankings", "the same data as a file"),
    Rule(
        "reporting",
        "GET",
        "/v1/units/{unit}/scorecard",
        "stage=published: anyone; otherwise the unit's reporter, or staff of the peer group and unit",
        "a unit sees its own unpublished figures, not another's",
    ),
    Rule("reporting", "GET", "/v1/units/{unit}/scorecard.csv", "as the scorecard", "the same data as a file"),
    Rule("reporting", "GET", "/v1/units/{unit}/trend", "as the scorecard", "a unit's figures over the years"),
    Rule("reporting", "GET", "/v1/units/{unit}/trend.csv", "as /v1/units/{unit}/trend", "the same data as a file"),
    Rule(
        "reporting",
        "GET",
        "/v1/units/{unit}/history",
        "the unit's reporter, or staff of the peer group and unit",
        "submissions, reasons and evidence are unpublished",
    ),
    Rule(
        "reporting",
        "GET",
        "/v1/diff",
        "staff of the peer group (for every unit)",
        "what moved across every unit, unpublished",
    ),
    Rule(
        "scoring",
        "GET",
        "/v1/units/{unit}/scores",
        "the unit's reporter, or staff of the peer group and unit",
        "live, unpublished scores with their explanations",
    ),
    Rule("scoring", "GET", "/v1/units/{unit}/scores/{code}", "as the unit's scores", "an explanation"),
    Rule(
        "scoring",
        "GET",
        "/v1/events/{sequence}/scores",
        "evaluator, approver of the event's peer group (for every unit), auditor, admin",
        "an event's lineage can reach every unit of a peer-relative indicator",
    ),
    # --- issue 13: measurement sets, templates and exports (rows added with their routes) ---
    Rule("reporting", "GET", "/v1/rankings.xlsx", "as /v1/rankings", "the same data as a workbook"),
    Rule(
        "reporting",
        "GET",
        "/v1/rankings.sdmx.csv",
        "as /v1/rankings",
        "every unit's points as SDMX-CSV 2.0, for statistical systems",
    ),
    Rule("reporting", "GET", "/v1/units/{unit}/scorecard.xlsx", "as the scorecard", "the same data as a workbook"),
    Rule(
        "reporting",
        "GET",
        "/v1/measurements.sdmx.csv",
        "staff of the peer group (for every unit)",
        "every unit's inputs and evidence counts as SDMX-CSV 2.0: unpublished submissions, whatever stage is asked",
    ),
    Rule(
        "ingest",
        "POST",
        "/v1/verification-sets",
        "evaluator of the peer group (and unit, if the key names units)",
        "a unit's whole verification in one decision: the verified result is the Department's (003 §II.2.b)",
    ),
    Rule(
        "ingest",
        "POST",
        "/v1/measurement-sets",
        "reporter of every unit of the set (in a peer group of the key)",
        "many measurements in one request: each row as POST /v1/measurements, for units of the key only (403)",
    ),
    Rule(
        "ingest",
        "GET",
        "/v1/catalogues/{catalogue_id}/versions/{version}/template.csv",
        PUBLIC,
        "a blank form of a public catalogue",
    ),
    Rule(
        "ingest",
        "GET",
        "/v1/catalogues/{catalogue_id}/versions/{version}/template.xlsx",
        PUBLIC,
        "a blank form of a public catalogue",
    ),
    # --- issue 14: the dashboard (rows added with its pages) ---
    Rule("reporting", "GET", "/dashboard", "as /v1/rankings", "the ranking page: the same figures as the API"),
    Rule("reporting", "GET", "/dashboard/rankings.csv", "as /v1/rankings", "the ranking page's CSV, logged in"),
    Rule("reporting", "GET", "/dashboard/rankings.xlsx", "as /v1/rankings", "the ranking page's XLSX, logged in"),
    Rule("reporting", "GET", "/dashboard/units/{unit}", "as the scorecard", "a unit's scorecard page"),
    Rule("reporting", "GET", "/dashboard/units/{unit}/scorecard.csv", "as the scorecard", "the scorecard page's CSV"),
    Rule("reporting", "GET", "/dashboard/units/{unit}/scorecard.xlsx", "as the scorecard", "the scorecard page's XLSX"),
    Rule("reporting", "GET", "/dashboard/units/{unit}/trend", "as /v1/units/{unit}/trend", "a unit's trend page"),
    Rule("reporting", "GET", "/dashboard/units/{unit}/history", "as /v1/units/{unit}/history", "a unit's audit trail"),
    Rule("reporting", "GET", "/dashboard/publications", "as /v1/rankings with stage=published", "what was published"),
    Rule("reporting", "GET", "/dashboard/login", PUBLIC, "the login form asks for a key, it needs none"),
    Rule("reporting", "POST", "/dashboard/login", PUBLIC, "checks the form's CSRF token, then the key as every key"),
    Rule("reporting", "POST", "/dashboard/logout", PUBLIC, "forgets the session cookie (with the form's CSRF token)"),
    Rule("reporting", "GET", "/dashboard/static/{name}", PUBLIC, "the stylesheet and icon of public pages"),
)


bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="or the key in X-API-Key")


async def presented_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> ApiKey | None:
    """The key the caller sent, if any: None without one, 401 for a key not in force."""
    secret = credentials.credentials if credentials is not None else header_key
    if not secret:
        return None
    client = request.client.host if request.client else "unknown"
    limiter: FailureLimiter = request.app.state.auth_failures
    wait = limiter.retry_after(client)
    if wait is not None:
        raise Problem(429, "Too many failed authentications", f"retry in {wait} s", retry_after=wait)
    keys: KeyCache = request.app.state.keys
    key = await keys.authenticate(secret)
    if key is None:
        limiter.failed(client)
        log.warning("refused an API key %s from %s: unknown, revoked or expired", secret_prefix(secret), client)
        raise Problem(
            401,
            "Unauthorized",
            "the API key is unknown, revoked or expired",
            [{"field": "Authorization", "message": "key not in force"}],
        )
    return key


OptionalKey = Annotated[ApiKey | None, Depends(presented_key)]


async def any_key(key: OptionalKey) -> ApiKey:
    if key is None:
        raise Problem(
            401,
            "Unauthorized",
            "an API key is required (Authorization: Bearer <key> or X-API-Key)",
            [{"field": "Authorization", "message": "required"}],
        )
    return key


AnyKey = Annotated[ApiKey, Depends(any_key)]


def forbidden(key: ApiKey, why: str, field: str | None = None, message: str = "not bound to this key") -> Problem:
    return Problem(403, "Forbidden", f"key {key.id} {why}", [{"field": field, "message": message}] if field else None)


def role(*roles: str) -> Callable[[ApiKey], Awaitable[ApiKey]]:
    async def has_role(key: AnyKey) -> ApiKey:
        if not key.has_role(*roles):
            raise forbidden(key, f"lacks the role: {' or '.join(roles)}")
        return key

    return has_role


AdminKey = Annotated[ApiKey, Depends(role("admin"))]
AuditorKey = Annotated[ApiKey, Depends(role(*AUDIT))]
StaffKey = Annotated[ApiKey, Depends(role(*STAFF))]
EvaluatorKey = Annotated[ApiKey, Depends(role("evaluator"))]
EvaluatorOrAdminKey = Annotated[ApiKey, Depends(role("evaluator", "admin"))]
ApproverKey = Annotated[ApiKey, Depends(role("approver"))]
ReporterKey = Annotated[ApiKey, Depends(role("reporter"))]


def require_scope(key: ApiKey, peer_group: str, unit: str | None, *, role_used: str) -> None:
    """A key acts only in its peer groups and, where it names units, for those units."""
    if not key.covers_peer_group(peer_group):
        raise forbidden(key, f"does not act in the peer group {peer_group}", "catalogue_id")
    if unit is not None and not key.covers_unit(unit):
        verb = "report" if role_used == "reporter" else "act"
        raise forbidden(key, f"may not {verb} for unit {unit}", "unit_id")
    if unit is None and ALL not in key.units:
        raise forbidden(key, "acts for named units only, not for a whole period", "catalogue_id", "units named")


def may_read(key: ApiKey, peer_group: str | None, unit: str | None) -> bool:
    """Unpublished figures: auditors and admins see all; evaluators and approvers their peer groups
    (and units, where the key names them: a view of every unit needs a key for every unit); a
    reporter its own units, one at a time."""
    if key.has_role(*AUDIT):
        return True
    in_group = peer_group is None or key.covers_peer_group(peer_group)
    units_covered = key.covers_unit(unit) if unit is not None else ALL in key.units
    if key.has_role("evaluator", "approver") and in_group and units_covered:
        return True
    return key.has_role("reporter") and unit is not None and in_group and key.covers_unit(unit)


async def require_read(request: Request, key: ApiKey, catalogue: str, version: str, unit: str | None) -> None:
    """For a read whose scope is known only from what it finds (an event's lineage)."""
    peer_group_of: Callable[[str, str], Awaitable[str | None]] = request.app.state.peer_group_of
    if not may_read(key, await peer_group_of(catalogue, version), unit):
        raise forbidden(key, f"may not read the unpublished figures of {catalogue}@{version}")


@dataclass(frozen=True)
class Reader:
    """Who reads: a key, or nobody for what is published."""

    key: ApiKey | None


async def _authorize_read(
    request: Request, key: ApiKey | None, catalogue: str, version: str, stage: str, unit: str | None
) -> Reader:
    if stage == "published":
        return Reader(key)
    if key is None:
        raise Problem(
            401,
            "Unauthorized",
            "an API key is required for unpublished figures (stage=published is public)",
            [{"field": "Authorization", "message": "required"}],
        )
    peer_group_of: Callable[[str, str], Awaitable[str | None]] = request.app.state.peer_group_of
    if not may_read(key, await peer_group_of(catalogue, version), unit):
        what = f"unit {unit}'s" if unit else "every unit's"
        raise forbidden(key, f"may not read {what} unpublished figures")
    return Reader(key)


async def unit_reader(
    request: Request,
    unit: str,
    key: OptionalKey,
    catalogue: CatalogueQuery,
    version: VersionQuery,
    stage: StageQuery = "self_assessment",
) -> Reader:
    return await _authorize_read(request, key, catalogue, version, stage, unit)


async def period_reader(
    request: Request,
    key: OptionalKey,
    catalogue: CatalogueQuery,
    version: VersionQuery,
    stage: StageQuery = "self_assessment",
) -> Reader:
    return await _authorize_read(request, key, catalogue, version, stage, None)


async def unpublished_unit_reader(
    request: Request, unit: str, key: OptionalKey, catalogue: CatalogueQuery, version: VersionQuery
) -> Reader:
    """Reads that are never published (history, live scores): a key is always needed."""
    return await _authorize_read(request, key, catalogue, version, "self_assessment", unit)


async def unpublished_period_reader(
    request: Request, key: OptionalKey, catalogue: CatalogueQuery, version: VersionQuery
) -> Reader:
    return await _authorize_read(request, key, catalogue, version, "self_assessment", None)


UnitReader = Annotated[Reader, Depends(unit_reader)]
PeriodReader = Annotated[Reader, Depends(period_reader)]
UnpublishedUnitReader = Annotated[Reader, Depends(unpublished_unit_reader)]
UnpublishedPeriodReader = Annotated[Reader, Depends(unpublished_period_reader)]
