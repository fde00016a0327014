"""Exports of what a set scored: every unit's points and inputs as SDMX-CSV 2.0, read back by a real SDMX
library (pysdmx) to the same values as the scorecards and the history, and the ranking and a scorecard as
XLSX workbooks."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from typing import Any

import openpyxl
import pytest

from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e
SCOPE = {"catalogue_id": "hcmc-dti-districts", "catalogue_version": "1.0", "period": 2024}
QUERY = {"catalogue": "hcmc-dti-districts", "version": "1.0", "period": 2024, "stage": "self_assessment"}


def flatten(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for node in nodes:
        found[node["code"]] = node.get("points")
        found |= flatten(node.get("children", []))
    return found


@pytest.fixture(scope="module")
def scored(running: RunningSystem) -> int:
    evidence = [{"title": "Quyết định 12/QĐ-UBND", "number": "12/QĐ-UBND"}, {"title": "Báo cáo năm 2024"}]
    rows = [
        {"unit_id": "quan-6", "indicator": "1.1", "inputs": {"a": "deputy"}, "evidence": evidence},
        {"unit_id": "quan-6", "indicator": "3.3", "inputs": {"a": "85%"}},
        {"unit_id": "quan-7", "indicator": "3.3", "inputs": {"a": "0,6"}},
        {"unit_id": "quan-7", "indicator": "8.5", "inputs": {"a": 9}},
    ]
    headers = {"Authorization": f"Bearer {running.keys['any-unit']}", "Idempotency-Key": "exports-set"}
    imported = running.ingest.post("/v1/measurement-sets", json={**SCOPE, "rows": rows}, headers=headers)
    assert imported.status_code == 201, imported.text
    last = int(imported.json()["last_sequence"])
    running.wait_until_projected(last, QUERY)
    return last


STRUCTURE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*:[A-Za-z][A-Za-z0-9_-]*\([0-9][0-9.]*\)$")


def strict_sdmx_csv(text: str) -> list[dict[str, str]]:
    """SDMX-CSV 2.0 read strictly: no byte-order mark, STRUCTURE, STRUCTURE_ID and ACTION first,
    a known structure type, an AGENCY:ID(VERSION) reference, a known action, every row complete."""
    assert not text.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(text)))
    header, rows = table[0], table[1:]
    assert header[:3] == ["STRUCTURE", "STRUCTURE_ID", "ACTION"] and len(set(header)) == len(header)
    for row in rows:
        assert len(row) == len(header), row
        assert row[0] in ("dataflow", "datastructure", "dataprovision") and STRUCTURE_ID.match(row[1]), row
        assert row[2] in ("I", "A", "R", "D"), row
    return [dict(zip(header, row, strict=True)) for row in rows]


def observations(
    text: str, dataflow: str = "DF_KPI_SCORES", key: tuple[str, ...] = ("UNIT", "INDICATOR"), column: str = "OBS_VALUE"
) -> dict[tuple[str, ...], str]:
    """key → a column (OBS_VALUE), by the strict reader and by pysdmx (the two agree)."""
    strict = {tuple(row[name] for name in key): row[column] for row in strict_sdmx_csv(text)}
    from pysdmx.io.csv.sdmx20.reader import read

    (dataset,) = read(text)
    assert dataset.short_urn == f"Dataflow=KPI_LEDGER:{dataflow}(1.0)"
    frame = dataset.data
    keys = zip(*(frame[name] for name in key), strict=True)
    by_pysdmx = {tuple(str(part) for part in found): value for found, value in zip(keys, frame[column], strict=True)}
    assert by_pysdmx.keys() == strict.keys()
    for found, value in by_pysdmx.items():  # pysdmx reads numbers as numbers: 0.0 for "0.00"
        shown = strict[found]
        if not shown:
            assert str(value) in ("", "nan", "NaN"), (found, value)
        else:
            assert _number(str(value)) == _number(shown), (found, value)
    return strict


def _number(text: str) -> Decimal | str:
    try:
        return Decimal(text)
    except ArithmeticError:
        return text


def test_scores_as_sdmx_csv_parse_back_to_the_scorecards(running: RunningSystem, scored: int) -> None:
    exported = running.reporting.get("/v1/rankings.sdmx.csv", params={**QUERY, "as_of": scored})
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    values = observations(exported.text)
    assert len({unit for unit, _ in values}) == 22  # every ranked unit
    rows = strict_sdmx_csv(exported.text)
    for unit in ("quan-6", "quan-7"):
        card = running.reporting.get(f"/v1/units/{unit}/scorecard", params={**QUERY, "as_of": scored}).json()
        expected = {"_T": card["total"], **flatten(card["pillars"])}
        read_back = {code: value for (of, code), value in values.items() if of == unit}
        assert {code: Decimal(value) for code, value in read_back.items() if value} == {
            code: Decimal(value) for code, value in expected.items() if value is not None
        }
        mine = [row for row in rows if row["UNIT"] == unit]
        assert {row["STAGE"] for row in mine} == {"self_assessment"} and {row["TIME_PERIOD"] for row in mine} == {
            "2024"
        }
    quan_6 = next(row for row in rows if (row["UNIT"], row["INDICATOR"]) == ("quan-6", "3.3"))
    assert (quan_6["OBS_VALUE"], quan_6["UNIT_NAME"]) == ("30.00", "Quận 6")


def test_the_ranking_and_a_scorecard_as_xlsx(running: RunningSystem, scored: int) -> None:
    params = {**QUERY, "as_of": scored}
    ranking = running.reporting.get("/v1/rankings", params=params).json()
    workbook = running.reporting.get("/v1/rankings.xlsx", params=params)
    assert workbook.status_code == 200, workbook.text
    sheet = openpyxl.load_workbook(io.BytesIO(workbook.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("Hạng (Rank)", "Mã đơn vị (Unit id)", "Đơn vị (Unit)", "Tổng điểm (Total)")
    by_unit = {row[1]: row for row in rows[1:]}
    for entry in ranking["rankings"]:
        assert by_unit[entry["unit_id"]][0] == entry["rank_label"]
        assert Decimal(str(by_unit[entry["unit_id"]][3])) == Decimal(entry["total"])
    card = running.reporting.get("/v1/units/quan-7/scorecard.xlsx", params=params)
    assert card.status_code == 200
    cells = list(openpyxl.load_workbook(io.BytesIO(card.content)).active.iter_rows(values_only=True))  # type: ignore[union-attr]
    points = {row[0]: row[3] for row in cells[1:] if row[0]}
    assert Decimal(str(points["3.3"])) == Decimal("15") and Decimal(str(points["8.5"])) == Decimal("9")
    # the footer: the total under Max and Points; the unit's id in the Code column, as text (not under Max)
    shown = running.reporting.get("/v1/units/quan-7/scorecard", params=params).json()
    assert cells[-2][1] == "Tổng (Total)"
    assert [Decimal(str(value)) for value in cells[-2][2:4]] == [Decimal(shown["max_points"]), Decimal(shown["total"])]
    assert cells[-1][:4] == ("quan-7", "Đơn vị (Unit): Quận 7", None, None)


def test_published_scores_as_sdmx_csv_are_the_published_scorecards(running: RunningSystem, scored: int) -> None:
    """The export reads every unit's scores in one pass; at stage=published, as each scorecard does: the
    stage the publication froze, at the sequence it froze, its units in its order."""
    for unit, indicator in (("quan-7", "3.3"), ("quan-6", "1.1")):
        decision = {**SCOPE, "unit_id": unit, "indicator": indicator, "decision": "accepted"}
        verified = running.post("evaluator", "/v1/verifications", decision, f"exports-v-{unit}-{indicator}")
        assert verified.status_code == 201, verified.text
    body = {**SCOPE, "incomplete_reason": "Công bố thử nghiệm xuất dữ liệu"}
    published = running.post("approver", "/v1/publications", body, "exports-publication")
    assert published.status_code == 201, published.text
    query = {**QUERY, "stage": "published"}
    running.wait_for(lambda: running.reporting.get("/v1/rankings", params=query).status_code == 200)
    ranking = running.reporting.get("/v1/rankings", params=query).json()
    exported = running.reporting.get("/v1/rankings.sdmx.csv", params=query)
    assert exported.status_code == 200, exported.text
    rows = strict_sdmx_csv(exported.text)
    totals = [row["UNIT"] for row in rows if row["INDICATOR"] == "_T"]
    assert totals == [entry["unit_id"] for entry in ranking["rankings"]] and len(totals) == 22
    values = observations(exported.text)
    for unit in ("quan-6", "quan-7", "quan-1"):
        card = running.reporting.get(f"/v1/units/{unit}/scorecard", params=query).json()
        expected = {"_T": card["total"], **flatten(card["pillars"])}
        read_back = {code: value for (of, code), value in values.items() if of == unit}
        assert read_back == {code: value or "" for code, value in expected.items()}
    assert {row["STAGE"] for row in rows} == {"published"}


def test_inputs_as_sdmx_csv_parse_back_to_the_history(running: RunningSystem, scored: int) -> None:
    """DF_KPI_INPUTS: one observation per unit, component and input, the latest measurement's value as the
    history shows it (a share as the exact decimal stored), its status and its evidence count."""
    params = {**QUERY, "as_of": scored}
    exported = running.reporting.get(
        "/v1/measurements.sdmx.csv", params=params, headers={"Authorization": f"Bearer {running.keys['evaluator']}"}
    )
    assert exported.status_code == 200, exported.text
    key = ("UNIT", "INDICATOR", "INPUT")
    values = observations(exported.text, "DF_KPI_INPUTS", key)
    evidence = observations(exported.text, "DF_KPI_INPUTS", key, "EVIDENCE_COUNT")
    status = observations(exported.text, "DF_KPI_INPUTS", key, "OBS_STATUS")
    expected: dict[tuple[str, ...], Any] = {}
    counts: dict[tuple[str, ...], int] = {}
    for unit in ("quan-6", "quan-7"):
        history = running.reporting.get(
            f"/v1/units/{unit}/history", params=params, headers={"Authorization": f"Bearer {running.keys['admin']}"}
        ).json()
        for entry in history:  # in order: the latest measurement of each component last
            if entry["type"] == "vn.kpi.measurement.recorded.v1" and entry["stage"] == "self_assessment":
                for name, value in entry["inputs"].items():
                    expected[(unit, entry["indicator"], name)] = value
                    counts[(unit, entry["indicator"], name)] = entry["evidence_count"]
    mine = {found: value for found, value in values.items() if found[0] in ("quan-6", "quan-7")}
    assert mine.keys() == expected.keys() and len(mine) == 4
    for found, value in expected.items():
        assert mine[found] == (str(value).lower() if isinstance(value, bool) else value), found
        assert evidence[found] == str(counts[found]) and status[found] == "submitted"
    assert mine[("quan-7", "3.3", "a")] == "0.6" and evidence[("quan-6", "1.1", "a")] == "2"
    rows = strict_sdmx_csv(exported.text)
    assert {(row["CATALOGUE"], row["VERSION"], row["TIME_PERIOD"], row["STAGE"]) for row in rows} == {
        ("hcmc-dti-districts", "1.0", "2024", "self_assessment")
    }
    assert next(row["UNIT_NAME"] for row in rows if row["UNIT"] == "quan-6") == "Quận 6"


def test_scores_as_sdmx_csv_carry_the_evidence_count_of_their_measurements(running: RunningSystem, scored: int) -> None:
    params = {**QUERY, "as_of": scored}
    exported = running.reporting.get("/v1/rankings.sdmx.csv", params=params)
    counts = observations(exported.text, column="EVIDENCE_COUNT")
    card = running.reporting.get("/v1/units/quan-6/scorecard", params=params).json()
    history = running.reporting.get(
        "/v1/units/quan-6/history", params=params, headers={"Authorization": f"Bearer {running.keys['admin']}"}
    ).json()
    by_event = {entry["event_id"]: entry.get("evidence_count") for entry in history}
    leaves = {node["code"]: node["event_id"] for node in _nodes(card["pillars"]) if node.get("event_id")}
    assert set(leaves) == {"1.1", "3.3"}
    for code, event_id in leaves.items():
        assert counts[("quan-6", code)] == str(by_event[event_id])
    assert counts[("quan-6", "1.1")] == "2" and counts[("quan-6", "3.3")] == "0"
    assert counts[("quan-6", "1")] == "2" and counts[("quan-6", "_T")] == "2"  # a pillar, the total: the sum
    assert counts[("quan-6", "2")] == ""  # nothing measured: no count


def _nodes(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [found for node in nodes for found in (node, *_nodes(node.get("children", [])))]
