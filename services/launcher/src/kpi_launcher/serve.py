"""One service under uvicorn, as `kpi-ledger run` and `deploy/` run it: `kpi-ledger serve ingest`.

On SIGINT or SIGTERM uvicorn shuts down gracefully (no new connections, requests in flight
answered, the lifespan's shutdown: the relay and the consumers stop after their batch) and then
raises the signal again, so a process that stopped cleanly would end "killed by SIGTERM" (exit 143)
and a supervisor would count a failure. The handlers installed here are what uvicorn restores and
raises: they end the process with exit 0 once the shutdown is done.
"""

from __future__ import annotations

import argparse
import os
import signal
from types import FrameType

from kpi_launcher.registry import SERVICES


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve(name: str, host: str, port: int, log_level: str = "warning") -> None:
    import uvicorn  # here: `kpi-ledger` builds its parser from this module, and most commands serve nothing

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stopped)
    uvicorn.run(SERVICES[name].app, factory=True, host=host, port=port, log_level=log_level, server_header=False)


def arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("service", choices=sorted(SERVICES))
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="default: <PREFIX>PORT, else the service's own")
    parser.add_argument("--log-level", default="warning")
    return parser


def port_of(name: str, given: int | None) -> int:
    service = SERVICES[name]
    return given if given is not None else int(os.environ.get(f"{service.env_prefix}PORT", service.default_port))


def main() -> None:
    args = arguments(argparse.ArgumentParser(prog="python -m kpi_launcher.serve")).parse_args()
    serve(args.service, args.host, port_of(args.service, args.port), args.log_level)


if __name__ == "__main__":
    main()
