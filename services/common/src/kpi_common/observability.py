"""What an operator sees of a service, installed by one call in each app factory: Prometheus metrics
at /metrics (kpi_common.metrics), request ids on every request and response, and JSON log lines
when KPI_LOG_FORMAT=json (kpi_common.logs)."""

from __future__ import annotations

from fastapi import FastAPI

from kpi_common.logs import RequestIds, configure_from_environment
from kpi_common.metrics import Metrics, install_metrics


def install_observability(app: FastAPI, service: str) -> Metrics:
    configure_from_environment(service)
    metrics = install_metrics(app, service)
    app.add_middleware(RequestIds)  # outermost: every log line of the request, metrics included, has its id
    return metrics
