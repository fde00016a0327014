"""`kpi-ledger import FILE`, `kpi-ledger template` and `kpi-ledger export`: measurement sets and their
templates over ingest's HTTP API, and exports (rankings, scorecards, SDMX of scores and inputs) over
reporting's, with the same key, scope and rules as any client; a progress bar while a file uploads or
downloads. A failure is one line on stderr and a non-zero exit, never a traceback: exit 1 when the
service refused the request (the problem's title and detail), 2 when it could not be made.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA_TYPES = {".csv": "text/csv", ".xlsx": XLSX, ".json": "application/json"}
CHUNK = 262_144
REFUSED, UNREACHABLE = 1, 2
# what `kpi-ledger export` downloads: reporting's path for each kind, by format ({unit}: --unit)
EXPORTS = {
    "rankings": {"csv": "/v1/rankings.csv", "xlsx": "/v1/rankings.xlsx"},
    "scorecard": {"csv": "/v1/units/{unit}/scorecard.csv", "xlsx": "/v1/units/{unit}/scorecard.xlsx"},
    "scores-sdmx": {"csv": "/v1/rankings.sdmx.csv"},
    "inputs-sdmx": {"csv": "/v1/measurements.sdmx.csv"},
}


class Failed(Exception):
    """What went wrong, in one line, and the exit status it ends with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def add_commands(commands: Any) -> None:
    """Add `import` and `template` to the kpi-ledger command's subparsers."""
    default_url = os.environ.get("KPI_INGEST_URL", "http://127.0.0.1:8001")
    imports = commands.add_parser("import", help="import a measurement set (CSV, XLSX or JSON) into ingest")
    imports.add_argument("file", type=Path)
    imports.add_argument("--url", default=default_url, help="ingest's address (default $KPI_INGEST_URL or :8001)")
    imports.add_argument("--key", default=os.environ.get("KPI_API_KEY"), help="the API key (default $KPI_API_KEY)")
    imports.add_argument("--catalogue", help="the catalogue id, for a file without the catalogue_id column")
    imports.add_argument("--version", help="the catalogue version, for a file without the column")
    imports.add_argument("--period", type=int, help="the year measured, for a file without the column")
    imports.add_argument("--mode", choices=["atomic", "partial"], default="atomic", help="all rows or none (default)")
    imports.add_argument("--dry-run", action="store_true", help="check every row; store nothing")
    imports.add_argument("--idempotency-key", help="default: derived from the file's content (a rerun imports once)")
    imports.set_defaults(handler=run_import)
    template = commands.add_parser("template", help="download the spreadsheet template of a catalogue version")
    template.add_argument("catalogue")
    template.add_argument("version")
    template.add_argument("--unit", help="fill in this unit's id")
    template.add_argument("--period", type=int, help="fill in the year measured")
    template.add_argument("--format", choices=["xlsx", "csv"], default="xlsx")
    template.add_argument("--out", type=Path, help="default: the name ingest gives it, in this folder")
    template.add_argument("--url", default=default_url)
    template.set_defaults(handler=run_template)
    add_export(commands)


def add_export(commands: Any) -> None:
    """`kpi-ledger export`: what reporting exports, to a file."""
    exports = commands.add_parser("export", help="download an export from reporting: rankings, a scorecard, SDMX")
    exports.add_argument("what", choices=list(EXPORTS), help="scores-sdmx, inputs-sdmx: SDMX-CSV 2.0 (docs/sdmx.md)")
    exports.add_argument("--catalogue", required=True, help="the catalogue id")
    exports.add_argument("--version", required=True, help="the catalogue version")
    exports.add_argument("--period", type=int, required=True, help="the year measured")
    exports.add_argument("--stage", choices=["self_assessment", "verification", "published"], default=None)
    exports.add_argument("--unit", help="the unit of a scorecard")
    exports.add_argument("--as-of", help="a past moment: a log sequence or a time")
    exports.add_argument("--format", choices=["csv", "xlsx"], default="csv", help="rankings and scorecards only")
    exports.add_argument("--out", type=Path, help="default: the name reporting gives it, in this folder")
    exports.add_argument(
        "--url",
        default=os.environ.get("KPI_REPORTING_URL", "http://127.0.0.1:8003"),
        help="reporting's address (default $KPI_REPORTING_URL or :8003)",
    )
    exports.add_argument("--key", default=os.environ.get("KPI_API_KEY"), help="the API key (default $KPI_API_KEY)")
    exports.set_defaults(handler=run_export, service="reporting")


def _guarded(work: Any, args: argparse.Namespace) -> int:
    try:
        return int(work(args))
    except Failed as failed:
        print(f"kpi-ledger {args.command}: {failed}", file=sys.stderr)
        return failed.status
    except httpx.HTTPError as error:
        service = getattr(args, "service", "ingest")
        print(f"kpi-ledger {args.command}: cannot reach {service} at {args.url}: {error}", file=sys.stderr)
        return UNREACHABLE
    except OSError as error:
        print(f"kpi-ledger {args.command}: {error.strerror or error}: {error.filename or ''}", file=sys.stderr)
        return UNREACHABLE


def run_import(args: argparse.Namespace) -> int:
    return _guarded(_import, args)


def run_template(args: argparse.Namespace) -> int:
    return _guarded(_template, args)


def run_export(args: argparse.Namespace) -> int:
    return _guarded(_export, args)


def _problem(response: httpx.Response) -> Failed:
    try:
        problem = response.json()
        message = f"{response.status_code} {problem.get('title', '')}: {problem.get('detail', '')}"
    except ValueError:
        message = f"{response.status_code} {response.reason_phrase}"
    return Failed(" ".join(message.split())[:500], REFUSED)


def _import(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not args.key:
        raise Failed("an API key is needed: --key or $KPI_API_KEY", UNREACHABLE)
    media_type = MEDIA_TYPES.get(path.suffix.lower())
    if media_type is None:
        raise Failed(f"{path.name}: a .csv, .xlsx or .json file is expected", UNREACHABLE)
    size = path.stat().st_size
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    headers = {
        "Authorization": f"Bearer {args.key}",
        "Idempotency-Key": args.idempotency_key or f"import-{digest[:40]}",
        "content-type": media_type,
    }
    params: dict[str, Any] = {"mode": args.mode, "dryRun": str(args.dry_run).lower()}
    for name, value in (("catalogue_id", args.catalogue), ("catalogue_version", args.version), ("period", args.period)):
        if value is not None:
            params[name] = value
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(f"uploading {path.name}", total=size)

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as file:
                while chunk := file.read(CHUNK):
                    progress.advance(task, len(chunk))
                    yield chunk

        with httpx.Client(base_url=args.url, timeout=600) as client:
            response = client.post("/v1/measurement-sets", content=chunks(), headers=headers, params=params)
    if response.status_code == 422 and "summary" in _json(response):
        _show(Console(), _json(response)["summary"], response.status_code)
        raise _problem(response)
    if response.status_code not in (200, 201):
        raise _problem(response)
    _show(Console(), response.json(), response.status_code)
    return 0


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _show(console: Console, summary: dict[str, Any], status: int) -> None:
    what = "checked (dry run)" if summary.get("dry_run") else "stored" if summary.get("stored") else "nothing stored"
    if summary.get("replayed"):
        what = "already imported under this Idempotency-Key"
    console.print(
        f"{summary['catalogue_id']}@{summary['catalogue_version']} {summary['period']}: {summary['rows']} rows, "
        f"{summary['imported']} imported, {summary['replaced']} replaced, {summary['unchanged']} unchanged, "
        f"{summary['refused']} refused: {what}"
    )
    if summary.get("errors"):
        table = Table("row", "field", "message")
        for error in summary["errors"]:
            table.add_row(str(error["row"]), error["field"], error["message"])
        console.print(table)
        if summary.get("errors_total", 0) > len(summary["errors"]):
            console.print(f"… and {summary['errors_total'] - len(summary['errors'])} more")


def _template(args: argparse.Namespace) -> int:
    params = {name: value for name, value in (("unit", args.unit), ("period", args.period)) if value is not None}
    path = f"/v1/catalogues/{args.catalogue}/versions/{args.version}/template.{args.format}"
    console = Console(stderr=True)
    status = console.status(f"downloading the template of {args.catalogue}@{args.version}")
    with status, httpx.Client(base_url=args.url, timeout=120) as client:
        response = client.get(path, params=params)
    if response.status_code != 200:
        raise _problem(response)
    disposition = response.headers.get("content-disposition", "")
    given = disposition.split('filename="', 1)[-1].rstrip('"') if "filename=" in disposition else ""
    out: Path = args.out or Path(given or f"template.{args.format}")
    out.write_bytes(response.content)
    Console().print(f"wrote {out} ({len(response.content):,} bytes)", soft_wrap=True)  # a path is never cut
    return 0


def _export(args: argparse.Namespace) -> int:
    """Stream the export to a file beside the one asked for, then move it there: a failure leaves nothing."""
    paths = EXPORTS[args.what]
    if args.format not in paths:
        raise Failed(f"{args.what} is SDMX-CSV only: leave out --format {args.format}", UNREACHABLE)
    if "{unit}" in paths[args.format] and not args.unit:
        raise Failed("a scorecard is a unit's: --unit is needed", UNREACHABLE)
    path = paths[args.format].replace("{unit}", args.unit or "")
    params = {"catalogue": args.catalogue, "version": args.version, "period": args.period}
    params |= {name: value for name, value in (("stage", args.stage), ("as_of", args.as_of)) if value is not None}
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with (
        httpx.Client(base_url=args.url, timeout=600) as client,
        client.stream("GET", path, params=params, headers=headers) as response,
    ):
        if response.status_code != 200:
            response.read()
            raise _problem(response)
        disposition = response.headers.get("content-disposition", "")
        given = disposition.split('filename="', 1)[-1].rstrip('"') if "filename=" in disposition else ""
        out: Path = args.out or Path(Path(given).name or f"{args.what}.{args.format}")
        size = int(response.headers.get("content-length") or 0) or None
        with (
            Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress,
            tempfile.NamedTemporaryFile(dir=out.parent.absolute(), prefix=f".{out.name}.", delete=False) as file,
        ):
            task = progress.add_task(f"downloading {out.name}", total=size)
            try:
                for chunk in response.iter_bytes(CHUNK):
                    file.write(chunk)
                    progress.advance(task, len(chunk))
            except BaseException:
                Path(file.name).unlink(missing_ok=True)
                raise
    Path(file.name).replace(out)
    Console().print(f"wrote {out} ({out.stat().st_size:,} bytes)", soft_wrap=True)
    return 0
