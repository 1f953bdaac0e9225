"""Leases: at most one process holds a named lease (a relay shard, the CRM pusher) at a time.

Per-contact order matters (an "Unsubscribed" must not overtake the "Resubscribed" before it),
and two relays reading the same contacts could interleave one contact's batches. So the relay
takes a lease per shard of the outbox (``LeaseSet``, one holder per process) and only a shard's
holder delivers its contacts; single-holder loops (CRM push) take one ``try_relay_lease``.

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

__all__ = ["LeaseSet", "RelayLease", "lease_set", "try_relay_lease"]


def _pg_key(name: str) -> str:
    return f"hashtext(current_schema() || '.revops-{name}')"


class RelayLease(Protocol):
    """The exclusive right to relay, until released or lost."""

    def held(self) -> bool:
        """True while the lease is still ours (checked before each drain)."""

    def release(self) -> None:
        """Give the lease up (idempotent)."""


class _PostgresLease:
    def __init__(self, connection: Connection, key: str) -> None:
        self._connection: Connection | None = connection
        self._key = key

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
            connection.execute(text(f"SELECT pg_advisory_unlock({self._key})"))
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


def _postgres(engine: Engine, name: str) -> RelayLease | None:
    key = _pg_key(name)
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        got = connection.execute(text(f"SELECT pg_try_advisory_lock({key})")).scalar()
    except SQLAlchemyError:
        connection.close()
        raise
    if got:
        return _PostgresLease(connection, key)
    connection.close()
    return None


def _sqlite(engine: Engine, name: str) -> RelayLease | None:
    database = engine.url.database
    if not database or database == ":memory:":
        return _FileLease(Path(os.devnull).open("rb"))  # private to this process anyway
    handle = Path(f"{database}.{name}-lock").open("ab")  # noqa: SIM115 - held for the lease
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return _FileLease(handle)


def try_relay_lease(engine: Engine, name: str = "relay") -> RelayLease | None:
    """Take the lease ``name`` if it is free; None when another process holds it. The relay
    takes ``relay``; the CRM pusher ``crm`` (one pusher keeps the CRM's rate limit)."""
    if engine.dialect.name == "postgresql":
        return _postgres(engine, name)
    return _sqlite(engine, name)


# ---- many leases on one holder (the relay's shards) ------------------------------------------


class LeaseSet(Protocol):
    """Named exclusive leases held by one process: the relay's shards and its member slot.

    One holder per relay process keeps PostgreSQL at one dedicated connection however many
    shards it holds. When the holder dies, the OS (SQLite) or the server (PostgreSQL) frees
    every lease it had, which is what lets another relay take a dead one's shards over.
    """

    def take(self, name: str) -> bool:
        """Take lease ``name`` if it is free (True), else leave it (False)."""

    def give_up(self, name: str) -> None:
        """Release lease ``name`` if held (idempotent)."""

    def is_free(self, name: str) -> bool:
        """True when nobody holds ``name`` (a probe: it is not kept)."""

    def alive(self) -> bool:
        """False once the holder lost its leases (the database connection dropped)."""

    def close(self) -> None:
        """Release every lease (idempotent)."""


class _PostgresLeaseSet:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self._held: set[str] = set()

    def _conn(self) -> Connection:
        if self._connection is None:
            connection = self._engine.connect()
            self._connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        return self._connection

    def _try(self, name: str) -> bool:
        got = self._conn().execute(text(f"SELECT pg_try_advisory_lock({_pg_key(name)})"))
        return bool(got.scalar())

    def _unlock(self, name: str) -> None:
        self._conn().execute(text(f"SELECT pg_advisory_unlock({_pg_key(name)})"))

    def take(self, name: str) -> bool:
        if name in self._held:
            return True
        if self._try(name):
            self._held.add(name)
            return True
        return False

    def give_up(self, name: str) -> None:
        if name in self._held:
            self._held.discard(name)
            with contextlib.suppress(SQLAlchemyError):
                self._unlock(name)

    def is_free(self, name: str) -> bool:
        if name in self._held:
            return False
        if not self._try(name):
            return False
        self._unlock(name)
        return True

    def alive(self) -> bool:
        if self._connection is None:
            return True
        try:
            self._connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            self.close()
            return False
        return True

    def close(self) -> None:
        connection, self._connection = self._connection, None
        self._held.clear()
        if connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                connection.execute(text("SELECT pg_advisory_unlock_all()"))
            with contextlib.suppress(SQLAlchemyError):
                connection.close()


class _FileLeaseSet:
    def __init__(self, engine: Engine) -> None:
        self._base = engine.url.database or ""
        self._held: dict[str, IO[bytes]] = {}

    def _private(self) -> bool:
        return not self._base or self._base == ":memory:"

    def _lock(self, name: str) -> IO[bytes] | None:
        handle = Path(f"{self._base}.{name}-lock").open("ab")  # noqa: SIM115 - held for the lease
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle

    def take(self, name: str) -> bool:
        if name in self._held:
            return True
        if self._private():
            self._held[name] = Path(os.devnull).open("rb")  # noqa: SIM115 - one process anyway
            return True
        handle = self._lock(name)
        if handle is None:
            return False
        self._held[name] = handle
        return True

    def give_up(self, name: str) -> None:
        handle = self._held.pop(name, None)
        if handle is not None:
            handle.close()

    def is_free(self, name: str) -> bool:
        if name in self._held:
            return False
        if self._private():
            return True
        handle = self._lock(name)
        if handle is None:
            return False
        handle.close()
        return True

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        for name in list(self._held):
            self.give_up(name)


def lease_set(engine: Engine) -> LeaseSet:
    """A holder for many named leases on ``engine``'s database (see ``LeaseSet``)."""
    if engine.dialect.name == "postgresql":
        return _PostgresLeaseSet(engine)
    return _FileLeaseSet(engine)
