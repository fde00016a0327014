"""Connecting to NATS, the same way in every service."""

from __future__ import annotations

import nats
from nats.aio.client import Client


async def connect(url: str, name: str) -> Client:
    servers = [server.strip() for server in url.split(",") if server.strip()]
    return await nats.connect(servers=servers, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5)
