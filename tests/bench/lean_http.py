"""A lean HTTP/1.1 client for the benchmarks' load: keep-alive connections over asyncio streams.

The load generator shares the two cores with the system it measures. httpx spends about 3 ms of
CPU per POST (measured), as much as ingest itself, so the figures said more about httpx than about
the system. This client writes a request as one buffer and reads the answer by its Content-Length:
about a tenth of that. It speaks only what the services answer (Content-Length bodies, no chunking).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit


class LeanConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self._reader, self._writer, self._host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> LeanConnection:
        parts = urlsplit(url)
        assert parts.scheme == "http" and parts.hostname and parts.port, url
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, f"{parts.hostname}:{parts.port}")

    async def post_json(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        """The status and the decoded JSON answer of one POST."""
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self._host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n{head}\r\n".encode("latin-1")
            + payload
        )
        status_line = await self._reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise ValueError("chunked answers are not spoken here")
        answer = await self._reader.readexactly(length)
        return status, json.loads(answer) if answer else None

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


class LeanPool:
    """Up to `size` keep-alive connections; a request waits for a free one (its wait is part of the
    latency an open-loop load measures)."""

    def __init__(self, url: str, size: int) -> None:
        self._url, self._size = url, size
        self._free: asyncio.Queue[LeanConnection] = asyncio.Queue()
        self._opened: list[LeanConnection] = []

    async def __aenter__(self) -> LeanPool:
        self._opened = [await LeanConnection.open(self._url) for _ in range(self._size)]
        for connection in self._opened:
            self._free.put_nowait(connection)
        return self

    async def __aexit__(self, *_: object) -> None:
        for connection in self._opened:
            await connection.close()

    async def post_json(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        connection = await self._free.get()
        try:
            return await connection.post_json(path, body, headers)
        finally:
            self._free.put_nowait(connection)
