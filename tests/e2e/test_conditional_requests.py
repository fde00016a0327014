"""What never changes answers with an ETag and honours If-None-Match (304, no body), over HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e


def revalidated(client: httpx.Client, path: str, **kwargs: object) -> tuple[httpx.Response, httpx.Response]:
    first = client.get(path, **kwargs)  # type: ignore[arg-type]
    assert first.status_code == 200, first.text
    tag = first.headers["ETag"]
    headers = {**kwargs.pop("headers", {}), "If-None-Match": tag}  # type: ignore[dict-item]
    return first, client.get(path, headers=headers, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/catalogues/vn-dti-province/versions/1.0",
        "/v1/catalogues/vn-dti-province/versions/1.0/indicators/1.6",
        "/v1/schemas/vn.kpi.measurement.recorded.v1",
    ],
)
def test_immutable_documents_revalidate_to_304(running: RunningSystem, path: str) -> None:
    first, again = revalidated(running.ingest, path)
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == first.headers["ETag"]
    assert "immutable" in first.headers["Cache-Control"]
    stale = running.ingest.get(path, headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200 and stale.json() == first.json()


def test_one_event_by_sequence_with_its_etag(running: RunningSystem) -> None:
    auditor = {"Authorization": f"Bearer {running.keys['auditor']}"}
    first, again = revalidated(running.ingest, "/v1/events/1", headers=auditor)
    assert first.json()["sequence"] == 1 and again.status_code == 304
    assert running.ingest.get("/v1/events/999999", headers=auditor).status_code == 404
    assert running.ingest.get("/v1/events/1").status_code == 401


def test_a_published_ranking_revalidates_and_changes_when_restated(running: RunningSystem) -> None:
    scope = {"catalogue_id": "vn-dti-province", "catalogue_version": "1.0", "period": 2024}
    sent = running.post(
        "gia-lai",
        "/v1/measurements",
        {**scope, "unit_id": "gia-lai", "indicator": "1.6", "inputs": {"a": True}},
        "etag-1",
    )
    assert sent.status_code == 201, sent.text
    running.wait_until_projected(
        sent.json()["sequence"], {"catalogue": "vn-dti-province", "version": "1.0", "period": 2024}
    )
    verified = {**scope, "unit_id": "gia-lai", "indicator": "1.6", "decision": "accepted"}
    assert running.post("evaluator", "/v1/verifications", verified, "etag-verify").status_code == 201
    reason = "Công bố thử nghiệm cho bộ nhớ đệm"
    published = running.post("approver", "/v1/publications", {**scope, "incomplete_reason": reason}, "etag-pub")
    assert published.status_code == 201, published.text
    query = {"catalogue": "vn-dti-province", "version": "1.0", "period": 2024, "stage": "published"}
    public = httpx.Client(base_url=running.reporting.base_url)  # no key: published rankings are public
    running.wait_for(lambda: public.get("/v1/rankings", params=query).status_code == 200)
    first, again = revalidated(public, "/v1/rankings", params=query)
    assert again.status_code == 304 and first.headers["Cache-Control"] == "no-cache"
    restated = running.post(
        "approver",
        "/v1/publications",
        {
            **scope,
            "incomplete_reason": reason,
            "replaces": published.json()["publication"]["publication_id"],
            "reason": "Đính chính",
        },
        "etag-restate",
    )
    assert restated.status_code == 201, restated.text
    older = {**query, "publication": published.json()["publication"]["publication_id"]}
    running.wait_for(lambda: public.get("/v1/rankings", params=older).json().get("restated_by") is not None)
    changed = public.get("/v1/rankings", params=older, headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.json()["restated_by"] is not None


def test_every_growing_list_pages_the_same_way(running: RunningSystem) -> None:
    admin = {"Authorization": f"Bearer {running.keys['admin']}"}
    scope = {"catalogue_id": "vn-dti-province", "catalogue_version": "1.0", "period": 2024, "unit_id": "da-nang"}
    for index, value in enumerate((True, False, True)):  # a submission and two corrections
        body = {**scope, "indicator": "1.6", "inputs": {"a": value}}
        assert running.post("da-nang", "/v1/measurements", body, f"paging-{index}").status_code in (200, 201)
    query = {"catalogue": "vn-dti-province", "version": "1.0", "period": 2024}
    history = "/v1/units/da-nang/history"
    listings = [
        (running.ingest, "/v1/events", {}, lambda found: found["events"], "sequence"),
        (running.ingest, "/v1/keys", {}, lambda found: found, "granted_sequence"),
        (running.reporting, history, query, lambda found: found, "sequence"),
    ]
    running.wait_for(lambda: len(running.reporting.get(history, params=query, headers=admin).json()) >= 3)
    for client, path, params, items_of, cursor in listings:
        seen: list[int] = []
        url: str | None = str(client.build_request("GET", path, params={**params, "limit": 2}).url)
        while url:
            answer = client.get(url, headers=admin)
            assert answer.status_code == 200, (path, answer.text)
            seen += [item[cursor] for item in items_of(answer.json())]
            url = answer.links.get("next", {}).get("url")
        everything = [
            item[cursor] for item in items_of(client.get(path, params={**params, "limit": 1000}, headers=admin).json())
        ]
        assert seen == everything == sorted(everything) and len(seen) >= 3, path
