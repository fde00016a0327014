"""Connecting to NATS, the same way in every service."""

from __future__ import annotations

import contextlib
import logging

import nats
from nats.aio.client import Client

log = logging.getLogger("kpi_ledger.nats")


async def connect(url: str, name: str, *, keep_trying: bool = True) -> Client:
    """A connection that reconnects for ever (or, with `keep_trying=False`, two quick attempts per
    server: for a probe that must answer soon). Connection errors are one line each, not a traceback."""

    async def error(problem: Exception) -> None:
        log.warning("NATS (%s): %s: %s", name, type(problem).__name__, problem or "no answer")

    servers = [server.strip() for server in url.split(",") if server.strip()]
    if not keep_trying:
        return await nats.connect(
            servers=servers,
            name=name,
            allow_reconnect=False,
            max_reconnect_attempts=1,  # nats-py gives up on a server after more than this many tries (0: never)
            reconnect_time_wait=0.2,
            error_cb=error,
            connect_timeout=5,
        )
    return await nats.connect(
        servers=servers, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=error
    )


async def close_quietly(client: Client | None) -> None:
    """Drain a connection that is up (what was sent is delivered); close one that is down or
    reconnecting (a drain would raise): a shutdown never ends in a traceback."""
    if client is None or client.is_closed:
        return
    if client.is_connected:
        with contextlib.suppress(Exception):
            await client.drain()
            return
    with contextlib.suppress(Exception):
        await client.close()
