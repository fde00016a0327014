"""`kpi-ledger template` and `kpi-ledger import` against the running system: a template downloaded,
filled and imported from the shell; a failure is one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from tests.e2e.conftest import RunningSystem

pytestmark = pytest.mark.e2e


def kpi_ledger(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kpi_launcher.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_a_template_downloaded_filled_and_imported_from_the_shell(running: RunningSystem, tmp_path: Path) -> None:
    url = str(running.ingest.base_url)
    out = tmp_path / "quan-5.xlsx"
    made = kpi_ledger(
        "template", "hcmc-dti-districts", "1.0", "--unit", "quan-5", "--period", "2024", "--out", str(out), "--url", url
    )
    assert made.returncode == 0, made.stderr
    workbook = openpyxl.load_workbook(out)
    sheet = workbook.active
    assert sheet is not None
    header = [str(cell.value).rsplit("(", 1)[-1].rstrip(")") for cell in sheet[1]]
    code, value = header.index("indicator"), header.index("a")
    for row in sheet.iter_rows(min_row=2):
        if row[code].value == "8.5":
            row[value].value = 7
        if row[code].value == "1.1":
            row[value].value = "Trưởng ban là Phó Bí thư/Phó Chủ tịch Quận/Huyện/Thành phố"
    workbook.save(out)
    key = running.keys["any-unit"]
    checked = kpi_ledger("import", str(out), "--url", url, "--key", key, "--dry-run")
    assert checked.returncode == 0, checked.stderr
    assert "2 imported" in checked.stdout and "dry run" in checked.stdout
    imported = kpi_ledger("import", str(out), "--url", url, "--key", key)
    assert imported.returncode == 0, imported.stderr
    assert "2 imported" in imported.stdout and "stored" in imported.stdout
    again = kpi_ledger("import", str(out), "--url", url, "--key", key)  # the same file: the same key, a replay
    assert again.returncode == 0 and "already imported" in again.stdout


def test_a_failure_is_one_line_and_a_non_zero_exit(running: RunningSystem, tmp_path: Path) -> None:
    url = str(running.ingest.base_url)
    bad = tmp_path / "bad.csv"
    bad.write_text("unit_id,indicator,a\nquan-5,8.5,-3\n", encoding="utf-8")
    scope = ["--catalogue", "hcmc-dti-districts", "--version", "1.0", "--period", "2024"]
    refused = kpi_ledger("import", str(bad), "--url", url, "--key", running.keys["any-unit"], *scope)
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0 and "Invalid measurement" in refused.stderr
    assert "inputs.a" in refused.stdout  # the refused row, in the summary table
    outcomes = [
        kpi_ledger("import", str(bad), "--url", url, "--key", "kpi_nobody_secret", *scope),
        kpi_ledger("import", str(tmp_path / "missing.csv"), "--url", url, "--key", "k"),
        kpi_ledger("import", str(bad), "--url", "http://127.0.0.1:9", "--key", "k", *scope),
        kpi_ledger("template", "no-such-catalogue", "1.0", "--url", url, "--out", str(tmp_path / "t.xlsx")),
    ]
    for outcome in outcomes:
        assert outcome.returncode != 0
        assert "Traceback" not in outcome.stderr and outcome.stderr.strip().count("\n") == 0, outcome.stderr
        assert outcome.stderr.startswith("kpi-ledger ")


def test_exports_downloaded_from_the_shell_are_what_reporting_exports(running: RunningSystem, tmp_path: Path) -> None:
    """`kpi-ledger export`: the rankings, a scorecard and both SDMX files, byte for byte as the API answers."""
    url, key = str(running.reporting.base_url), running.keys["admin"]
    scope = ["--catalogue", "hcmc-dti-districts", "--version", "1.0", "--period", "2024"]
    query = {"catalogue": "hcmc-dti-districts", "version": "1.0", "period": 2024}
    verified = running.ingest.get("/v1/audit/verify", headers={"Authorization": f"Bearer {key}"}).json()
    head = int(verified["head_sequence"])
    running.wait_until_projected(head, {**query, "stage": "self_assessment"})
    moment, params = ["--as-of", str(head)], {**query, "as_of": head}
    cases = [
        (["rankings"], "/v1/rankings.csv"),
        (["rankings", "--format", "xlsx"], "/v1/rankings.xlsx"),
        (["scorecard", "--unit", "quan-5", "--format", "xlsx"], "/v1/units/quan-5/scorecard.xlsx"),
        (["scores-sdmx"], "/v1/rankings.sdmx.csv"),
        (["inputs-sdmx"], "/v1/measurements.sdmx.csv"),
    ]
    for index, (what, path) in enumerate(cases):
        out = tmp_path / f"export-{index}"
        done = kpi_ledger("export", *what, *scope, *moment, "--url", url, "--key", key, "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert f"wrote {out}" in done.stdout
        expected = running.reporting.get(path, params=params, headers={"Authorization": f"Bearer {key}"})
        if path.endswith(".xlsx"):  # a workbook is zipped with the time it was written: compare its cells
            assert _cells(out.read_bytes()) == _cells(expected.content)
        else:
            assert out.read_bytes() == expected.content, path
    assert list(tmp_path.glob(".*")) == []  # no partial file left beside


def _cells(content: bytes) -> list[tuple[object, ...]]:
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    return list(sheet.iter_rows(values_only=True))


def test_a_failed_export_is_one_line_a_non_zero_exit_and_no_file(running: RunningSystem, tmp_path: Path) -> None:
    url = str(running.reporting.base_url)
    scope = ["--catalogue", "hcmc-dti-districts", "--version", "1.0", "--period", "2024"]
    out = tmp_path / "out.csv"
    outcomes = {
        "a bad key": kpi_ledger(
            "export", "rankings", *scope, "--url", url, "--key", "kpi_nobody_secret", "--out", str(out)
        ),
        "no key": kpi_ledger("export", "inputs-sdmx", *scope, "--url", url, "--out", str(out)),
        "a reporter's key": kpi_ledger(
            "export", "inputs-sdmx", *scope, "--url", url, "--key", running.keys["any-unit"], "--out", str(out)
        ),
        "unreachable": kpi_ledger("export", "rankings", *scope, "--url", "http://127.0.0.1:9", "--out", str(out)),
        "no unit": kpi_ledger("export", "scorecard", *scope, "--url", url, "--out", str(out)),
        "no xlsx of SDMX": kpi_ledger("export", "scores-sdmx", *scope, "--format", "xlsx", "--url", url),
        "not published": kpi_ledger(
            "export", "rankings", *scope, "--stage", "published", "--period", "2031", "--url", url
        ),
    }
    for what, outcome in outcomes.items():
        assert outcome.returncode != 0, what
        assert "Traceback" not in outcome.stderr and outcome.stderr.strip().count("\n") == 0, (what, outcome.stderr)
        assert outcome.stderr.startswith("kpi-ledger export: "), (what, outcome.stderr)
    assert outcomes["a bad key"].returncode == 1 and "401" in outcomes["a bad key"].stderr
    assert outcomes["a reporter's key"].returncode == 1 and "403" in outcomes["a reporter's key"].stderr
    assert outcomes["unreachable"].returncode == 2 and "cannot reach reporting" in outcomes["unreachable"].stderr
    assert not out.exists() and list(tmp_path.glob(".*")) == []
