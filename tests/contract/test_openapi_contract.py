"""Each service's OpenAPI document, checked against the running system (NATS and the three services as
processes, no mocks): for requests schemathesis generates from the document, and for seeded requests
that reach every success path, the answer is never a server error and its status, content type and
body are what the operation documents, for success and for problem+json errors alike."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from kpi_ingest.entrypoints.api.app import create_app as ingest_app
from kpi_reporting.entrypoints.api.app import create_app as reporting_app
from kpi_scoring.entrypoints.api.app import create_app as scoring_app
from tests.conftest import fixture_catalogue
from tests.e2e.conftest import RunningSystem, start_running_system

pytestmark = pytest.mark.e2e
SERVICES = ("ingest", "scoring", "reporting")
SCOPE = {"catalogue": "mini-dti", "version": "1.0", "period": 2024}
MEASUREMENT = {
    "catalogue_id": "mini-dti",
    "catalogue_version": "1.0",
    "period": 2024,
    "unit_id": "gia-lai",
    "indicator": "3.1",
    "inputs": {"a": 600, "b": 1000},
}
SEED = int(os.environ.get("KPI_CONTRACT_SEED", "2026"))  # the same cases every run; set it to explore
MAX_EXAMPLES = 25  # generated cases per operation, beside the examples and coverage phases
# What a generated request is checked for. Left out: positive_data_acceptance (a request valid by the
# schema may still name nothing registered: 404, 409); negative_data_rejection (the test sets a valid
# key, so a case generated with an invalid Authorization header is sent as a valid request);
# ignored_auth (the access matrix tests who may call what, and its invalid-key probes would trip the
# failed-authentication limiter).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    missing_required_header,
    unsupported_method,
]
# A reporter key for the operations a reporter calls (the examples name gia-lai); admin elsewhere.
REPORTER_OPERATIONS = {("POST", "/v1/measurements"), ("POST", "/v1/context")}


def bearer(system: RunningSystem, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {system.keys[key]}"}


def seed(system: RunningSystem) -> int:
    """A catalogue and a measurement, projected by scoring and reporting: the sequence of the measurement."""
    admin = bearer(system, "admin")
    registered = system.ingest.post("/v1/catalogues", json=fixture_catalogue(), headers=admin)
    assert registered.status_code == 201, registered.text
    recorded = system.ingest.post(
        "/v1/measurements", json=MEASUREMENT, headers={**bearer(system, "gia-lai"), "Idempotency-Key": "contract-1"}
    )
    assert recorded.status_code == 201, recorded.text
    sequence: int = recorded.json()["sequence"]

    def projected() -> bool:
        ranking = system.reporting.get("/v1/rankings", params=SCOPE, headers=admin)
        score = system.scoring.get("/v1/units/gia-lai/scores/3.1", params=SCOPE, headers=admin)
        return ranking.status_code == 200 and ranking.json()["as_of_sequence"] >= sequence and score.is_success

    system.wait_for(projected)
    return sequence


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    var_dir = tmp_path_factory.mktemp("var")
    urls = {name: f"sqlite+aiosqlite:///{var_dir / f'{name}.db'}" for name in SERVICES}
    running = start_running_system(var_dir, urls)
    yield running
    running.system.stop()


@pytest.fixture(scope="module")
def event(system: RunningSystem) -> int:
    """The seeded measurement's sequence, once scoring and reporting have projected it."""
    return seed(system)


def documents() -> dict[str, dict[str, Any]]:
    """The OpenAPI documents, from the app factories (nothing connects before the lifespan), so that
    schemathesis can make one test per operation at collection; the test below checks that the running
    services serve these very documents."""
    factories = {"ingest": ingest_app, "scoring": scoring_app, "reporting": reporting_app}
    return {service: factory().openapi() for service, factory in factories.items()}


DOCUMENTS = documents()
SCHEMAS = {service: schemathesis.openapi.from_dict(document) for service, document in DOCUMENTS.items()}
for _schema in SCHEMAS.values():
    _schema.config.generation.update(max_examples=MAX_EXAMPLES)
    _schema.config.seed = SEED


def service_of(case: schemathesis.Case) -> str:
    return next(service for service, schema in SCHEMAS.items() if case.operation.schema.raw_schema is schema.raw_schema)


def test_the_running_services_serve_the_documents_tested(system: RunningSystem) -> None:
    for service in SERVICES:
        assert getattr(system, service).get("/openapi.json").json() == DOCUMENTS[service], service


@schemathesis.pytest.parametrize(**SCHEMAS)
@pytest.mark.usefixtures("event")
def test_generated_requests_get_the_documented_answers(case: schemathesis.Case, system: RunningSystem) -> None:
    key = "gia-lai" if (case.method.upper(), case.path) in REPORTER_OPERATIONS else "admin"
    client = getattr(system, service_of(case))
    case.call_and_validate(base_url=str(client.base_url).rstrip("/"), headers=bearer(system, key), checks=CHECKS)


@dataclass(frozen=True)
class Seeded:
    """A request that the seeded data answers in a known way."""

    service: str
    method: str
    path: str
    status: int
    key: str | None = None
    path_parameters: dict[str, Any] | None = None
    query: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


def measurement(**changes: Any) -> dict[str, Any]:
    return {**MEASUREMENT, **changes}


def seeded_requests(event: int) -> list[Seeded]:
    """A success for every GET with the seeded data, and the problems a client meets most (no key,
    unknown ids, a bad as_of, a missing or replayed Idempotency-Key, a version registered twice)."""
    gia_lai, mini = {"unit": "gia-lai"}, {"catalogue_id": "mini-dti", "version": "1.0"}
    national = {"catalogue_id": "vn-dti-province", "version": "1.0"}
    replay = {"Idempotency-Key": "contract-1"}
    return [
        Seeded("ingest", "GET", "/healthz", 200),
        Seeded("ingest", "GET", "/readyz", 200),
        Seeded("ingest", "GET", "/metrics", 200),
        Seeded(
            "ingest",
            "GET",
            "/v1/catalogues/{catalogue_id}/versions/{version}/template.csv",
            200,
            path_parameters={"catalogue_id": "mini-dti", "version": "1.0"},
        ),
        Seeded(
            "ingest",
            "GET",
            "/v1/catalogues/{catalogue_id}/versions/{version}/template.xlsx",
            200,
            path_parameters={"catalogue_id": "mini-dti", "version": "1.0"},
            query={"unit": "gia-lai", "period": 2024},
        ),
        Seeded("ingest", "GET", "/v1/catalogues", 200),
        Seeded("ingest", "GET", "/v1/admin/withheld", 200, "admin"),
        Seeded("ingest", "GET", "/v1/admin/withheld", 401),
        Seeded("ingest", "GET", "/v1/catalogues/{catalogue_id}/versions/{version}", 200, path_parameters=mini),
        Seeded("ingest", "GET", "/v1/catalogues/{catalogue_id}/versions/{version}", 200, path_parameters=national),
        Seeded(
            "ingest",
            "GET",
            "/v1/catalogues/{catalogue_id}/versions/{version}",
            404,
            path_parameters={"catalogue_id": "nope", "version": "1.0"},
        ),
        Seeded(
            "ingest",
            "GET",
            "/v1/catalogues/{catalogue_id}/versions/{version}/indicators/{code}",
            200,
            path_parameters={**mini, "code": "3.1"},
        ),
        Seeded("ingest", "GET", "/v1/schemas", 200),
        Seeded("ingest", "GET", "/v1/schemas/{name}", 200, path_parameters={"name": "catalogue"}),
        Seeded("ingest", "GET", "/v1/peer-groups", 200),
        Seeded(
            "ingest",
            "GET",
            "/v1/peer-groups/{peer_group_id}",
            200,
            path_parameters={"peer_group_id": "provinces"},
            query={"period": 2024},
        ),
        Seeded("ingest", "GET", "/v1/events", 200, "auditor", query={"limit": 50}),
        Seeded("ingest", "GET", "/v1/events", 401),
        Seeded("ingest", "GET", "/v1/audit/verify", 200, "auditor"),
        Seeded("ingest", "GET", "/v1/keys", 200, "auditor"),
        Seeded("ingest", "POST", "/v1/measurements", 200, "gia-lai", headers=replay, body=measurement()),
        Seeded("ingest", "POST", "/v1/measurements", 400, "gia-lai", body=measurement()),
        Seeded(
            "ingest",
            "POST",
            "/v1/measurements",
            422,
            "gia-lai",
            headers={"Idempotency-Key": "contract-2"},
            body=measurement(inputs={"a": "many"}),
        ),
        Seeded("ingest", "POST", "/v1/catalogues", 409, "admin", body=fixture_catalogue()),
        Seeded("ingest", "GET", "/v1/events/{sequence}", 200, "admin", path_parameters={"sequence": event}),
        Seeded("ingest", "GET", "/v1/events/{sequence}", 404, "admin", path_parameters={"sequence": 2**40}),
        Seeded("scoring", "GET", "/healthz", 200),
        Seeded("scoring", "GET", "/readyz", 200),
        Seeded("scoring", "GET", "/metrics", 200),
        Seeded("scoring", "GET", "/v1/units/{unit}/scores", 200, "admin", path_parameters=gia_lai, query=SCOPE),
        Seeded(
            "scoring",
            "GET",
            "/v1/units/{unit}/scores",
            200,
            "admin",
            path_parameters=gia_lai,
            query={**SCOPE, "as_of": str(event)},
        ),
        Seeded(
            "scoring",
            "GET",
            "/v1/units/{unit}/scores",
            422,
            "admin",
            path_parameters=gia_lai,
            query={**SCOPE, "as_of": "yesterday"},
        ),
        Seeded(
            "scoring",
            "GET",
            "/v1/units/{unit}/scores/{code}",
            200,
            "admin",
            path_parameters={**gia_lai, "code": "3.1"},
            query=SCOPE,
        ),
        Seeded(
            "scoring",
            "GET",
            "/v1/units/{unit}/scores/{code}",
            404,
            "admin",
            path_parameters={**gia_lai, "code": "9.9"},
            query=SCOPE,
        ),
        Seeded(
            "scoring",
            "GET",
            "/v1/units/{unit}/scores/{code}",
            401,
            path_parameters={**gia_lai, "code": "3.1"},
            query=SCOPE,
        ),
        Seeded("scoring", "GET", "/v1/events/{sequence}/scores", 200, "admin", path_parameters={"sequence": event}),
        Seeded("reporting", "GET", "/healthz", 200),
        Seeded("reporting", "GET", "/readyz", 200),
        Seeded("reporting", "GET", "/metrics", 200),
        Seeded("reporting", "GET", "/v1/rankings.xlsx", 200, "admin", query=SCOPE),
        Seeded("reporting", "GET", "/v1/rankings.sdmx.csv", 200, "admin", query=SCOPE),
        Seeded("reporting", "GET", "/v1/measurements.sdmx.csv", 200, "admin", query=SCOPE),
        Seeded("reporting", "GET", "/v1/measurements.sdmx.csv", 401, query=SCOPE),
        Seeded(
            "reporting", "GET", "/v1/units/{unit}/scorecard.xlsx", 200, "admin", path_parameters=gia_lai, query=SCOPE
        ),
        Seeded("reporting", "GET", "/v1/rankings", 200, "admin", query=SCOPE),
        Seeded("reporting", "GET", "/v1/rankings", 200, "admin", query={**SCOPE, "pillar": "3"}),
        Seeded("reporting", "GET", "/v1/rankings", 404, query={**SCOPE, "stage": "published"}),
        Seeded("reporting", "GET", "/v1/rankings", 401, query=SCOPE),
        Seeded("reporting", "GET", "/v1/rankings.csv", 200, "admin", query=SCOPE),
        Seeded("reporting", "GET", "/v1/units/{unit}/scorecard", 200, "admin", path_parameters=gia_lai, query=SCOPE),
        Seeded("reporting", "GET", "/v1/units/{unit}/scorecard", 200, "gia-lai", path_parameters=gia_lai, query=SCOPE),
        Seeded(
            "reporting", "GET", "/v1/units/{unit}/scorecard.csv", 200, "admin", path_parameters=gia_lai, query=SCOPE
        ),
        Seeded(
            "reporting",
            "GET",
            "/v1/units/{unit}/trend",
            200,
            "admin",
            path_parameters=gia_lai,
            query={"catalogue": "mini-dti", "version": "1.0"},
        ),
        Seeded(
            "reporting",
            "GET",
            "/v1/units/{unit}/trend",
            404,
            "admin",
            path_parameters={"unit": "atlantis"},
            query={"catalogue": "mini-dti", "version": "1.0"},
        ),
        Seeded(
            "reporting",
            "GET",
            "/v1/units/{unit}/trend",
            200,
            "admin",
            path_parameters=gia_lai,
            query={"catalogue": "mini-dti", "version": "1.0", "indicator": "3.1"},
        ),
        Seeded(
            "reporting",
            "GET",
            "/v1/units/{unit}/trend",
            422,
            "admin",
            path_parameters=gia_lai,
            query={"catalogue": "mini-dti", "version": "1.0", "indicator": "9.9"},
        ),
        Seeded(
            "reporting",
            "GET",
            "/v1/units/{unit}/trend.csv",
            200,
            "admin",
            path_parameters=gia_lai,
            query={"catalogue": "mini-dti", "version": "1.0", "indicator": "3"},
        ),
        Seeded("reporting", "GET", "/v1/units/{unit}/history", 200, "admin", path_parameters=gia_lai, query=SCOPE),
        Seeded("reporting", "GET", "/v1/diff", 200, "admin", query={**SCOPE, "from": "0"}),
    ]


SEEDED_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_seeded_requests_get_the_documented_answers(system: RunningSystem, event: int) -> None:
    exercised: dict[str, set[str]] = {service: set() for service in SERVICES}
    for seeded in seeded_requests(event):
        operation = SCHEMAS[seeded.service][seeded.path][seeded.method]
        headers = {**seeded.headers, **(bearer(system, seeded.key) if seeded.key else {})}
        body = {"body": seeded.body} if seeded.body is not None else {}
        case = operation.Case(path_parameters=seeded.path_parameters, query=seeded.query, headers=headers, **body)
        base_url = str(getattr(system, seeded.service).base_url).rstrip("/")
        response = case.call_and_validate(base_url=base_url, checks=SEEDED_CHECKS)
        assert response.status_code == seeded.status, f"{seeded}: {response.status_code} {response.text}"
        if response.status_code < 300:
            exercised[seeded.service].add(f"{seeded.method} {seeded.path}")
    for service in SERVICES:
        gets = {
            f"{operation.method.upper()} {operation.path}"
            for operation in (result.ok() for result in SCHEMAS[service].get_all_operations())
            if operation.method.upper() == "GET"
        }
        assert gets - exercised[service] == set(), service


def last_sequence(system: RunningSystem) -> int:
    after, last = 0, 0
    while True:
        page = system.ingest.get("/v1/events", params={"after": after, "limit": 1000}, headers=bearer(system, "admin"))
        events = page.json()["events"]
        last = events[-1]["sequence"] if events else last
        if len(events) < 1000:
            return last
        after = page.json()["next_after"]


def test_every_command_accepted_above_was_published_and_applied_in_time(system: RunningSystem) -> None:
    """Issue 15: whatever the generated requests got stored (the cases above, with valid keys) is on
    the stream and applied by scoring and reporting within 30 s, with no dead letter anywhere: no
    accepted command is a poison event."""
    head = last_sequence(system)
    assert head > 1

    def applied() -> bool:
        ranking = system.reporting.get("/v1/rankings", params=SCOPE, headers=bearer(system, "admin"))
        scoring = system.scoring.get("/metrics").text
        position = f'kpi_consumer_position{{consumer="scoring",stream="KPI_EVENTS"}} {float(head)}'
        return ranking.status_code == 200 and ranking.json()["as_of_sequence"] >= head and position in scoring

    system.wait_for(applied, timeout=30)
    for service, table in (("ingest", "outbox"), ("scoring", "dead_letters"), ("reporting", "dead_letters")):
        with sqlite3.connect(system.database_urls[service].split("///", 1)[1]) as connection:
            assert connection.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), (service, table)
