"""Engine creation, schema migration under a lock, and the schema-version check.

SQLite (the embedded default) is opened in WAL mode with a busy timeout so the gateway, the
relay and the worker can share one file; PostgreSQL is reached by URL.

Migrations are Alembic's, run programmatically. Only one process migrates at a time: on
PostgreSQL the migration runs in one transaction holding an advisory lock (DDL is
transactional there, so a waiting process sees the whole new schema or none of it); on SQLite
a file lock beside the database does the same. A process that must not migrate (a worker, the
gateway) checks the schema version instead and waits for ``revops migrate``
(``wait_for_schema``).
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from revops.errors import StoreUnavailable
from revops.logging import get_logger

__all__ = [
    "MIGRATION_LOCK_ID",
    "SchemaNotReady",
    "SchemaState",
    "create_store_engine",
    "migrate",
    "schema_state",
    "session_factory",
    "wait_for_schema",
]

log = get_logger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"

MIGRATION_LOCK_ID = 0x7265766F7073
"""PostgreSQL advisory lock key of the migration ("revops" in ASCII); one per database."""
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:id)")


class SchemaNotReady(StoreUnavailable):
    """The store's schema is not at the revision this code needs: run ``revops migrate``."""


@dataclass(frozen=True)
class SchemaState:
    """The revisions the database is at, and the ones this code's migrations end at."""

    current: frozenset[str]
    head: frozenset[str]
    known: frozenset[str]

    @property
    def at_head(self) -> bool:
        """The database is exactly where this code expects it."""
        return self.current == self.head

    @property
    def ahead(self) -> bool:
        """The database has a revision this code does not know (a newer release migrated)."""
        return bool(self.current - self.known)

    def describe(self) -> str:
        """One line for logs and error messages."""
        current = ", ".join(sorted(self.current)) or "empty (never migrated)"
        return f"schema at {current}, this release needs {', '.join(sorted(self.head))}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's folder is created if missing."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def _state_on(connection: Connection) -> SchemaState:
    script = ScriptDirectory.from_config(_config())
    current = MigrationContext.configure(connection).get_current_heads()
    return SchemaState(
        current=frozenset(current),
        head=frozenset(script.get_heads()),
        known=frozenset(rev.revision for rev in script.walk_revisions()),
    )


def schema_state(engine: Engine) -> SchemaState:
    """Where the database's schema is; raises StoreUnavailable when it cannot be reached."""
    try:
        with engine.connect() as connection:
            return _state_on(connection)
    except OperationalError as exc:
        raise StoreUnavailable(f"store unreachable: {exc.orig}") from exc


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: Engine) -> SchemaState:
    """Bring the schema to the newest revision under the migration lock; idempotent.

    Several processes may call this at once: one migrates, the others wait for its lock and
    then find the schema at head. A schema newer than this code is left alone. Returns the
    state before migrating.
    """
    cfg = _config()
    try:
        with contextlib.ExitStack() as stack:
            if engine.dialect.name == "sqlite":
                stack.enter_context(_sqlite_file_lock(engine))
            connection = stack.enter_context(engine.begin())
            if engine.dialect.name == "postgresql":
                # Held until this transaction ends: the whole migration, then its commit.
                connection.execute(_ADVISORY_LOCK, {"id": MIGRATION_LOCK_ID})
            before = _state_on(connection)
            if not before.at_head and not before.ahead:
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "heads")  # parts may add independent branches
            return before
    except OperationalError as exc:
        raise StoreUnavailable(f"store unreachable: {exc.orig}") from exc


def wait_for_schema(engine: Engine, timeout: float, *, poll: float = 1.0) -> SchemaState:
    """Wait up to ``timeout`` seconds for the schema to reach this code's head revision.

    An unreachable store counts as not ready yet (the database may be starting too). A schema
    newer than this code is accepted (a rolling deploy: migrations stay backward compatible for
    one release). Logs one ``schema_not_ready`` line when it starts waiting; raises
    ``SchemaNotReady`` (a ``StoreUnavailable``) naming ``revops migrate`` at the deadline.
    """
    deadline = time.monotonic() + timeout
    told = False
    while True:
        try:
            state = schema_state(engine)
            if state.ahead:
                log.warning("schema_newer_than_code", state=state.describe())
            if state.at_head or state.ahead:
                return state
            reason = state.describe()
        except StoreUnavailable as exc:
            reason = str(exc)
        if time.monotonic() >= deadline:
            raise SchemaNotReady(
                f"the store is not ready ({reason}) after waiting {timeout:g}s: "
                "run `revops migrate` (it migrates once, under a lock), then start this again"
            )
        if not told:
            log.warning(
                "schema_not_ready",
                reason=reason,
                waiting_seconds=timeout,
                hint="waiting for `revops migrate`",
            )
            told = True
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
