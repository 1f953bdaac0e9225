"""The relay lease: at most one process delivers the outbox at a time.

Per-contact order matters (an "Unsubscribed" must not overtake the "Resubscribed" before it),
and two relays reading the same outbox could interleave one contact's batches. So each relay
first takes this lease and only the holder delivers; the others stand by and retry.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) keyed by the schema,
  held on a dedicated autocommit connection. If the holder dies, its connection closes and
  the lock frees itself at once; no expiry to tune, no clock to trust.
- SQLite: an exclusive ``flock`` on a file beside the database (every process sharing the
  file is on the same host), released by the OS when the holder exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

__all__ = ["RelayLease", "try_relay_lease"]

_PG_KEY = "hashtext(current_schema() || '.revops-relay')"


class RelayLease(Protocol):
    """The exclusive right to relay, until released or lost."""

    def held(self) -> bool:
        """True while the lease is still ours (checked before each drain)."""

    def release(self) -> None:
        """Give the lease up (idempotent)."""


class _PostgresLease:
    def __init__(self, connection: Connection) -> None:
        self._connection: Connection | None = connection

    def held(self) -> bool:
        if self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            self.release()
            return False
        return True

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        with contextlib.suppress(SQLAlchemyError):
            connection.execute(text(f"SELECT pg_advisory_unlock({_PG_KEY})"))
        with contextlib.suppress(SQLAlchemyError):
            connection.close()


class _FileLease:
    def __init__(self, handle: IO[bytes]) -> None:
        self._handle: IO[bytes] | None = handle

    def held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()  # closing the descriptor drops the flock


def _postgres(engine: Engine) -> RelayLease | None:
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        got = connection.execute(text(f"SELECT pg_try_advisory_lock({_PG_KEY})")).scalar()
    except SQLAlchemyError:
        connection.close()
        raise
    if got:
        return _PostgresLease(connection)
    connection.close()
    return None


def _sqlite(engine: Engine) -> RelayLease | None:
    database = engine.url.database
    if not database or database == ":memory:":
        return _FileLease(Path(os.devnull).open("rb"))  # private to this process anyway
    handle = Path(f"{database}.relay-lock").open("ab")  # noqa: SIM115 - held for the lease
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return _FileLease(handle)


def try_relay_lease(engine: Engine) -> RelayLease | None:
    """Take the lease if it is free; None when another relay holds it."""
    if engine.dialect.name == "postgresql":
        return _postgres(engine)
    return _sqlite(engine)
