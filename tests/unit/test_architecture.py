"""The shape of the house, checked on the source: one scorer, and a core whose modules do not lean
on each other in circles."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# what computes points: only the scoring service may call these
SCORER = {
    *("score_period", "score_unit", "score_indicator", "rescore_leaf", "with_peer_events", "rule_points", "peer_stats"),
}


def imported_names(package: Path) -> Iterator[tuple[Path, str, str]]:
    """(file, module, name) for every `from module import name` in a file or anywhere in a package's
    files, including imports inside functions."""
    for path in [package] if package.is_file() else sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    yield path, node.module, alias.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name, ""


def test_only_the_scoring_service_computes_points() -> None:
    for service in ("ingest", "reporting", "common"):
        package = ROOT / "services" / service / "src"
        calls = [
            f"{path.relative_to(ROOT)}: {name}"
            for path, module, name in imported_names(package)
            if module == "kpi_core.scoring" and name in SCORER
        ]
        assert calls == [], f"{service} computes points: {calls}"


def test_scoring_service_uses_the_core_scorer() -> None:
    package = ROOT / "services" / "scoring" / "src"
    used = {name for _, module, name in imported_names(package) if module == "kpi_core.scoring"}
    assert used & SCORER  # the one scorer is the core's, not a copy in the service


def test_measurements_and_scoring_do_not_import_each_other() -> None:
    core = ROOT / "shared" / "src" / "kpi_core"
    for module, other in (("measurements", "kpi_core.scoring"), ("scoring", "kpi_core.measurements")):
        found = [name for _, imported, name in imported_names(core / f"{module}.py") if imported == other]
        assert found == [], f"kpi_core.{module} imports {other}: {found}"


SERVICE_PACKAGES = {"kpi_ingest", "kpi_scoring", "kpi_reporting", "kpi_launcher"}


def test_common_and_core_name_no_service_above_them() -> None:
    """kpi_common is what the services share and kpi_core what everything shares: neither imports a
    service or the launcher (which knows the services through its registry), by name or otherwise."""
    for package, forbidden in (
        (ROOT / "services" / "common" / "src", SERVICE_PACKAGES),
        (ROOT / "shared" / "src", SERVICE_PACKAGES | {"kpi_common"}),
    ):
        found = [
            f"{path.relative_to(ROOT)}: {module}"
            for path, module, _ in imported_names(package)
            if module.split(".")[0] in forbidden
        ]
        assert found == [], f"{package.relative_to(ROOT)} imports what sits above it: {found}"
        by_name = [
            f"{path.relative_to(ROOT)}:{node.lineno}"
            for path in sorted(package.rglob("*.py"))
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None)) in {"import_module", "__import__"}
        ]
        assert by_name == [], f"{package.relative_to(ROOT)} imports modules by name: {by_name}"


def test_building_a_projection_does_not_import_the_http_stack() -> None:
    """`kpi-ledger rebuild` builds a service's projection without serving it: its composition root
    must not pull in FastAPI (0.4 s of a rebuild's start, measured), whatever the routes need."""
    probe = (
        "import sys, kpi_scoring.bootstrap, kpi_reporting.bootstrap\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'fastapi'))"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "[]", found
