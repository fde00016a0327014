"""Prometheus metrics of a service, at `GET /metrics` (the text exposition format).

Every service counts its HTTP requests and their latency per route template and status. What lives
outside the process (a consumer's position and the stream's head, the outbox) is read when
Prometheus scrapes, by probes the service registers: each returns metric families. The registry is
the app's own, never the library's global one (several apps run in one test process).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("kpi_ledger.metrics")
Probe = Callable[[], Awaitable[Iterable[Metric]]]
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Families:
    """A collector of families read just before (the probes are async; collection is not)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class Metrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "kpi_http_requests",
            "HTTP requests answered, by route template and status",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kpi_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            ["service", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._probes: list[Probe] = []

    def probe(self, probe: Probe) -> None:
        self._probes.append(probe)

    async def exposition(self) -> bytes:
        families: list[Metric] = []
        for probe in self._probes:
            try:
                families += list(await probe())
            except Exception as error:  # a failing probe leaves its metrics out; the scrape still answers
                log.warning(
                    "metrics probe %s failed: %s: %s", getattr(probe, "__name__", probe), type(error).__name__, error
                )
        scraped = CollectorRegistry(auto_describe=False)
        scraped.register(_Families(families))
        return generate_latest(self.registry) + generate_latest(scraped)


class _RequestMetrics:
    """Counts each answered request under its route template (never the raw path: ids would explode it)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method, service = scope["method"], self.metrics.service
            self.metrics.requests.labels(service, method, route, str(status)).inc()
            self.metrics.latency.labels(service, method, route).observe(time.perf_counter() - started)


def install_metrics(app: FastAPI, service: str) -> Metrics:
    """`GET /metrics` and the request counters; probes are added with `app.state.metrics.probe`."""
    metrics = app.state.metrics = Metrics(service)
    app.add_middleware(_RequestMetrics, metrics=metrics)
    router = APIRouter(tags=["health"])

    @router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    async def exposition(request: Request) -> Response:
        """Prometheus metrics: requests and latency per route, and the service's own (consumers, outbox)."""
        return Response(await request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
    return metrics


def gauge(name: str, documentation: str, labels: dict[str, str], value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def counter(name: str, documentation: str, labels: dict[str, str], value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family
