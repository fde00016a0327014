"""`kpi-ledger`: run the embedded system, apply migrations, rebuild a projection, verify the log, copy a
stream, manage API keys, print NATS declarations. The services come from the registry."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kpi_launcher import embedded, serve
from kpi_launcher.registry import PROJECTIONS, SERVICES

if TYPE_CHECKING:
    from kpi_common.projection_service import ProjectionService

# Each command imports what it needs when it runs, not here: importing every command's code (SQLAlchemy,
# nats-py, the audit) took 1.4 s before any command, `kpi-ledger import` and `--help` included.


def _database_url(var_dir: Path, service: str) -> str:
    configured = os.environ.get(f"{SERVICES[service].env_prefix}DATABASE_URL")
    return configured or f"sqlite+aiosqlite:///{var_dir / f'{service}.db'}"


FIRST_RUN_KEYS = {  # one duty per key: who adjusts does not also publish (four eyes)
    "admin": (["admin"], []),
    "auditor": (["auditor"], []),
    "evaluator": (["evaluator"], []),
    "approver": (["approver"], []),
    "demo-reporter": (["reporter"], ["*"]),
}


def _first_run_keys(database_url: str) -> dict[str, str]:
    """On the first start (no key granted yet), one key per duty, granted as events (the database migrated)."""
    from kpi_ingest import admin

    if admin.key_count(database_url):
        return {}
    return admin.grant_many(
        database_url, {key_id: (roles, units, ["*"], None) for key_id, (roles, units) in FIRST_RUN_KEYS.items()}
    )


class Supervisor:
    """Restarts a service that exited, waiting 1, 2, 4 … up to 30 s between attempts (reset once it
    has stayed up a minute), so one crash never stops the system and a crash loop never spins."""

    def __init__(self, system: embedded.System) -> None:
        self._system = system
        self._delay: dict[str, float] = {}
        self._restart_at: dict[str, float] = {}
        self._started_at: dict[str, float] = {}

    def check(self, now: float) -> None:
        for name, service in list(self._system.services.items()):
            if service.process.poll() is None:
                if now - self._started_at.get(name, now) > 60:
                    self._delay.pop(name, None)
                continue
            if name not in self._restart_at:
                delay = self._delay.get(name, 0.5) * 2
                self._delay[name] = min(delay, 30.0)
                self._restart_at[name] = now + self._delay[name]
                print(
                    f"kpi-ledger: {name} exited with code {service.process.returncode}; "
                    f"restarting in {self._delay[name]:.0f} s",
                    file=sys.stderr,
                )
            elif now >= self._restart_at[name]:
                del self._restart_at[name]
                self._system.services[name] = embedded.restart(service)
                self._started_at[name] = now
                print(f"kpi-ledger: {name} restarted (pid {self._system.services[name].process.pid})", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from kpi_common import streams

    var_dir = Path(args.var).resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    ports = {name: int(os.environ.get(f"{s.env_prefix}PORT", s.default_port)) for name, s in SERVICES.items()}
    nats_port = int(os.environ.get("KPI_NATS_PORT", "4222"))
    database_urls = {name: _database_url(var_dir, name) for name in SERVICES}
    embedded.migrate_all(database_urls)
    new_keys = _first_run_keys(database_urls["ingest"])
    os.environ.setdefault("KPI_LOG_FORMAT", "json")  # the services' logs: one JSON object a line
    print(f"kpi-ledger: starting NATS JetStream on 127.0.0.1:{nats_port} and the services (logs in {var_dir / 'logs'})")
    try:
        system = embedded.start_system(
            var_dir,
            ports=ports,
            nats_port=nats_port,
            database_urls=database_urls,
            log_dir=_logs(var_dir),
            migrated=True,
        )
    except KeyboardInterrupt:  # Ctrl-C while starting: what had started is stopped (start_system)
        print("\nkpi-ledger: stopped before every service was ready", file=sys.stderr)
        return 130
    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)  # from here on, Ctrl-C is a request to stop, not an exception
    signal.signal(signal.SIGTERM, _stop)
    supervisor = Supervisor(system)
    try:
        print("\nkpi-ledger is running:")
        for name, service in system.services.items():
            print(f"  {name:<10} {service.url}   OpenAPI: {service.url}/docs")
        print(f"  nats       {system.nats_url}   (streams {streams.EVENTS.name}, {streams.SCORES.name})")
        if new_keys:
            print("\nAPI keys granted for this installation (shown once; the log keeps only their hashes):")
            for key_id, secret in new_keys.items():
                print(f"  {key_id:<14} {secret}")
        print("\nCtrl-C stops everything.", flush=True)
        while not stopping:
            supervisor.check(time.monotonic())
            time.sleep(0.5)
    finally:
        print("\nkpi-ledger: stopping", flush=True)
        system.stop()
    return 0


def _logs(var_dir: Path) -> Path:
    logs = var_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs


def migrate(args: argparse.Namespace) -> int:
    var_dir = Path(args.var).resolve()
    unknown = [service for service in args.services if service not in SERVICES]
    if unknown:
        print(f"kpi-ledger: no service {', '.join(unknown)} (there are {', '.join(SERVICES)})", file=sys.stderr)
        return 2
    services = args.services or list(SERVICES)
    embedded.migrate_all({service: _database_url(var_dir, service) for service in services})
    for service in services:
        print(f"{service}: migrated")
    return 0


def _keys_database(args: argparse.Namespace) -> str:
    url = args.database_url or _database_url(Path(args.var).resolve(), "ingest")
    embedded.migrate("ingest", url)
    return url


def _key_command(work: Callable[[str], str | None]) -> Callable[[argparse.Namespace], int]:
    """Run a key command on ingest's database: its answer on stdout, a refusal on one line, exit 2."""

    def command(args: argparse.Namespace) -> int:
        from pydantic import ValidationError

        from kpi_ingest.service_layer.errors import IngestError

        try:
            shown = work(_keys_database(args))
        except IngestError as refused:
            print(f"kpi-ledger: {refused.detail}", file=sys.stderr)
            return 2
        except ValidationError as invalid:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors())
            print(f"kpi-ledger: {problems}", file=sys.stderr)
            return 2
        if shown:
            print(shown)
        return 0

    command.__doc__ = work.__doc__
    return command


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def add_key(args: argparse.Namespace) -> int:
    from kpi_ingest import admin

    def work(url: str) -> str:
        expires = datetime.fromisoformat(args.expires) if args.expires else None
        return admin.grant(url, args.id, _split(args.roles), _split(args.units), _split(args.peer_groups), expires)

    try:
        return _key_command(work)(args)
    except ValueError as invalid:  # a date that is not ISO 8601
        print(f"kpi-ledger: --expires: {invalid}", file=sys.stderr)
        return 2


def rotate_key(args: argparse.Namespace) -> int:
    from kpi_ingest import admin

    return _key_command(lambda url: admin.rotate(url, args.id))(args)


def revoke_key(args: argparse.Namespace) -> int:
    from kpi_ingest import admin

    return _key_command(lambda url: admin.revoke(url, args.id, args.reason))(args)


def nats_config(_args: argparse.Namespace) -> int:
    from kpi_common import streams

    print(json.dumps(streams.declarations(), indent=2, sort_keys=True, default=str))
    return 0


def write_schemas(args: argparse.Namespace) -> int:
    from kpi_core.schemas import all_schemas

    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, schema in all_schemas().items():
        (folder / f"{name}.schema.json").write_text(
            json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8"
        )
        print(folder / f"{name}.schema.json")
    return 0


def sync(args: argparse.Namespace) -> int:
    from kpi_common import streams
    from kpi_common.sync import follow

    stream = streams.SCORES if args.stream == "scores" else streams.EVENTS
    asyncio.run(follow(args.nats, args.durable, Path(args.out), stream))
    return 0


def verify(args: argparse.Namespace) -> int:
    """Re-walk ingest's hash chain straight from its database (no service needed) and compare it with
    the event stream on NATS (`--nats`; `--no-stream` to skip) and any sync copies (`--copy FILE`)."""
    from kpi_common.db import make_engine, session_factory
    from kpi_ingest.config import Settings as IngestSettings
    from kpi_ingest.service_layer.audit import compare_with_copies, verify_log, verify_with_stream
    from kpi_ingest.service_layer.unit_of_work import UnitOfWork

    settings = IngestSettings()  # KPI_INGEST_TRUSTED_CHECKPOINT_KEYS and KPI_INGEST_NATS_URL, as the API
    trusted = frozenset(settings.trusted_checkpoint_keys)

    async def run() -> dict[str, object]:
        engine = make_engine(args.database_url or _database_url(Path(args.var).resolve(), "ingest"))
        uow = UnitOfWork(session_factory(engine))
        try:
            if args.no_stream:
                report = await verify_log(uow, trusted, stream_unavailable="--no-stream")
            else:
                report = await verify_with_stream(uow, trusted, args.nats or settings.nats_url)
            if args.copy:
                await compare_with_copies(uow, report, [Path(copy) for copy in args.copy])
            return report.as_dict()
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    print(json.dumps(report, indent=2))
    warnings = report.get("warnings")
    for warning in warnings if isinstance(warnings, list) else []:  # what could not be proven, where a person reads
        print(f"kpi-ledger verify: WARNING: {warning}", file=sys.stderr)
    return 0 if report["ok"] else 1


def serve_one(args: argparse.Namespace) -> int:
    serve.serve(args.service, args.host, serve.port_of(args.service, args.port), args.log_level)
    return 0


def rebuild(args: argparse.Namespace) -> int:
    """Replay a projection from the stream into a fresh database and swap it in (stop the service first)."""
    from kpi_common.fresh_database import DatabaseInUse
    from kpi_common.rebuild import StreamUnavailable
    from kpi_common.rebuild import rebuild as replay

    service = PROJECTIONS[args.service]
    build = service.projection_service
    assert build is not None  # what makes it one of PROJECTIONS
    url = args.database_url or _database_url(Path(args.var).resolve(), args.service)
    embedded.migrate(args.service, url)

    def projection(database_url: str) -> ProjectionService:
        return build(service.settings(database_url=database_url, nats_url=args.nats))

    def migrate(database_url: str) -> None:
        embedded.migrate(args.service, database_url)

    try:
        done = asyncio.run(replay(projection, service.tables(), args.nats, url, migrate, args.timeout))
    except StreamUnavailable as unavailable:
        print(f"kpi-ledger: {unavailable}; nothing was changed", file=sys.stderr)
        return 2
    except (TimeoutError, DatabaseInUse) as failed:
        print(f"\nkpi-ledger: {failed}; the {args.service} database was left as it was", file=sys.stderr)
        return 1
    rate = f", {done.position / done.replay_seconds:,.0f} events/s" if done.replay_seconds else ""
    print(
        f"{args.service}: rebuilt from the stream up to sequence {done.position}: replayed in "
        f"{done.replay_seconds:.2f} s{rate}, {done.prepare_seconds:.2f} s to prepare the fresh database"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kpi-ledger")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="start NATS and the three services on the embedded default")
    run_parser.add_argument("--var", default="var", help="folder for data, logs and keys (default ./var)")
    run_parser.set_defaults(handler=run)
    migrate_parser = commands.add_parser("migrate", help="apply each service's migrations")
    migrate_parser.add_argument("services", nargs="*", help=f"{', '.join(SERVICES)} (default: all)")
    migrate_parser.add_argument("--var", default="var")
    migrate_parser.set_defaults(handler=migrate)
    key_parser = commands.add_parser("add-key", help="grant an API key (an event); prints the secret once")
    key_parser.add_argument("id")
    key_parser.add_argument(
        "--roles", default="reporter", help="comma-separated: reporter,evaluator,approver,auditor,admin"
    )
    key_parser.add_argument("--units", default="", help="comma-separated unit ids the key acts for (* for all)")
    key_parser.add_argument("--peer-groups", default="*", help="comma-separated peer groups it acts in (default *)")
    key_parser.add_argument("--expires", default=None, help="ISO 8601 time it stops working, e.g. 2027-12-31T23:59Z")
    key_parser.set_defaults(handler=add_key)
    rotate_parser = commands.add_parser("rotate-key", help="a new secret for a key; prints it once")
    rotate_parser.add_argument("id")
    rotate_parser.set_defaults(handler=rotate_key)
    revoke_parser = commands.add_parser("revoke-key", help="revoke a key everywhere")
    revoke_parser.add_argument("id")
    revoke_parser.add_argument("--reason", required=True)
    revoke_parser.set_defaults(handler=revoke_key)
    for keys_parser in (key_parser, rotate_parser, revoke_parser):
        keys_parser.add_argument("--database-url", default=None, help="ingest's database (default: as `run` uses)")
        keys_parser.add_argument("--var", default="var")
    serve_parser = serve.arguments(
        commands.add_parser("serve", help="one service under uvicorn; SIGINT/SIGTERM drain it and exit 0")
    )
    serve_parser.set_defaults(handler=serve_one)
    config_parser = commands.add_parser("nats-config", help="print the JetStream stream and consumer declarations")
    config_parser.set_defaults(handler=nats_config)
    schemas_parser = commands.add_parser("schemas", help="write the JSON Schemas of the catalogue format and events")
    schemas_parser.add_argument("folder", nargs="?", default="docs/schemas")
    schemas_parser.set_defaults(handler=write_schemas)
    sync_parser = commands.add_parser(
        "sync", help="the reference sync consumer: copy the stream into a JSON Lines file"
    )
    sync_parser.add_argument("--nats", default=os.environ.get("KPI_NATS_URL", "nats://127.0.0.1:4222"))
    sync_parser.add_argument("--durable", default="national-sync", help="a name for this copy, in logs")
    sync_parser.add_argument("--out", default="var/sync/events.jsonl")
    sync_parser.add_argument(
        "--stream",
        choices=["events", "scores"],
        default="events",
        help="the event log (default), or the scores scoring computed from it (KPI_SCORES)",
    )
    sync_parser.set_defaults(handler=sync)
    verify_parser = commands.add_parser(
        "verify", help="verify the event log's hash chain and checkpoints, and compare it with the stream"
    )
    verify_parser.add_argument("--database-url", default=None, help="ingest's database (default: as `run` uses)")
    verify_parser.add_argument("--var", default="var")
    verify_parser.add_argument("--nats", default=None, help="NATS holding the stream (default KPI_INGEST_NATS_URL)")
    verify_parser.add_argument("--no-stream", action="store_true", help="only the database (says so in the report)")
    verify_parser.add_argument(
        "--copy",
        action="append",
        metavar="FILE",
        help="a sync copy (`kpi-ledger sync --out`) to hold the log to as well; repeatable",
    )
    verify_parser.set_defaults(handler=verify)
    rebuild_parser = commands.add_parser(
        "rebuild", help="replay a projection from the stream into a fresh database and swap it in"
    )
    rebuild_parser.add_argument("service", choices=list(PROJECTIONS))
    rebuild_parser.add_argument("--nats", default=os.environ.get("KPI_NATS_URL", "nats://127.0.0.1:4222"))
    rebuild_parser.add_argument("--database-url", default=None)
    rebuild_parser.add_argument("--var", default="var")
    rebuild_parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before giving up (default 1 h)")
    rebuild_parser.set_defaults(handler=rebuild)
    from kpi_launcher import exchange  # issue 13: import, template, export

    exchange.add_commands(commands)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
