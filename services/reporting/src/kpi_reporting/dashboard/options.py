"""What the dashboard is told about where it runs: its public origin behind a reverse proxy, whether the
proxy's X-Forwarded-Host / X-Forwarded-Proto are to be believed, and where the other services answer
(for the audit trail's links to an event and to a score's explanation).

The app factory hands them on (`app.state.dashboard`, from reporting's settings); an app that hands
nothing on gets the defaults, which are closed: the login's Origin check compares with the Host header
only, forwarded headers are ignored, and no link leaves this service.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request

from kpi_core.scope import Scope


def origin_of(address: str) -> str:
    """An address's origin as a browser writes it in an Origin header: "https://kpi.example.gov.vn"
    (scheme and host in lower case, the default port left out)."""
    parts = urlsplit(address.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(scheme)
    port = f":{parts.port}" if parts.port is not None and parts.port != default else ""
    return f"{scheme}://{host}{port}" if scheme and host else ""


@dataclass(frozen=True)
class DashboardOptions:
    public_origin: str | None = None  # e.g. "https://kpi.example.gov.vn": the only origin a login form may come from
    trust_forwarded: bool = False  # believe the proxy's X-Forwarded-Host / -Proto (only behind a proxy that sets them)
    ingest_url: str | None = None  # where a reader's browser reaches ingest (GET /v1/events/{sequence})
    scoring_url: str | None = None  # where it reaches scoring (GET /v1/units/{unit}/scores/{code})

    def event_link(self, sequence: int) -> str | None:
        return f"{self.ingest_url.rstrip('/')}/v1/events/{sequence}" if self.ingest_url else None

    def explanation_link(self, unit: str, code: str, scope: Scope, sequence: int) -> str | None:
        """Scoring's explanation of one score as it stood after the event `sequence`."""
        if not self.scoring_url:
            return None
        query = (
            f"catalogue={scope.catalogue_id}&version={scope.version}&period={scope.period}"
            f"&stage={scope.stage}&as_of={sequence}"
        )
        return f"{self.scoring_url.rstrip('/')}/v1/units/{unit}/scores/{code}?{query}"

    def expected_origins(self, request: Request) -> set[str]:
        """The origins a login or logout form of this dashboard may be sent from."""
        if self.public_origin:
            return {origin_of(self.public_origin)}
        scheme = request.url.scheme
        host = request.headers.get("host", "")
        if self.trust_forwarded:
            # a proxy may chain them ("a, b"): the first is what the browser asked for
            host = request.headers.get("x-forwarded-host", "").split(",")[0].strip() or host
            scheme = request.headers.get("x-forwarded-proto", "").split(",")[0].strip() or scheme
            return {origin_of(f"{scheme}://{host}")}
        # the Host header names no scheme: a proxy that keeps Host may still end TLS before us
        return {origin_of(f"http://{host}"), origin_of(f"https://{host}")}


def options(request: Request) -> DashboardOptions:
    """The options the app was given; the closed defaults for an app given none."""
    app = request.scope.get("app")
    found = getattr(app.state, "dashboard", None) if app is not None else None
    return found if isinstance(found, DashboardOptions) else DashboardOptions()
