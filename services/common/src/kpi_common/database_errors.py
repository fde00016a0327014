"""Telling a database that is away from a failing request or event: the first is retried (503 to a
client, the same event again in a consumer, never counted toward a dead letter), the second is not."""

from __future__ import annotations

import traceback

# What a lost or refused database connection raises, by the name of its class anywhere in the error's
# chain (asyncpg's are imported only where PostgreSQL is used; sqlite3's and SQLAlchemy's share names).
_CONNECTION_ERRORS = {
    "OperationalError",  # SQLite busy or locked; a server that went away
    "InterfaceError",  # a connection already closed
    "CannotConnectNowError",  # PostgreSQL starting up, shutting down or in recovery
    "ConnectionDoesNotExistError",  # the connection was closed in the middle of an operation
    "ConnectionFailureError",
    "TooManyConnectionsError",
}


def database_unavailable(error: BaseException) -> bool:
    """The database did not answer now (restarting, a dropped connection, locked): a retry can succeed,
    so it is no bug of the request or the code."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "connection_invalidated", False):
            return True
        if isinstance(current, OSError) and _raised_by_a_database_driver(current):  # a socket refused or gone
            return True
        if any(kind.__name__ in _CONNECTION_ERRORS for kind in type(current).__mro__):
            return True
        current = current.__cause__ or current.__context__
    return False


def _raised_by_a_database_driver(error: BaseException) -> bool:
    frames = traceback.extract_tb(error.__traceback__)
    return any(driver in frame.filename for frame in frames for driver in _DRIVERS)


_DRIVERS = ("/sqlalchemy/", "/asyncpg/", "/aiosqlite/")
