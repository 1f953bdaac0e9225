"""What every CLI command needs: settings, the store, a Temporal client, error handling.

Exit codes are the CLI's contract: 1 the thing asked for does not exist, 2 bad arguments or an
invalid definition (nothing stored), 3 a service is unreachable.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from revops.errors import ConfigError, NotFound, StoreUnavailable, TemporalUnavailable
from revops.logging import configure_logging
from revops.settings import Settings, get_settings

if TYPE_CHECKING:  # imported where used: every command pays for the CLI's imports
    from contacts.contract import ContactConfig
    from store.repo import Store

__all__ = [
    "console",
    "current_bundle",
    "err",
    "fail",
    "open_store",
    "operator",
    "resolve_contact",
    "run_async",
    "settings",
]

T = TypeVar("T")

console = Console()
err = Console(stderr=True, soft_wrap=True)  # messages stay one line: greppable


def fail(message: str, code: int) -> NoReturn:
    """Print ``message`` on stderr and exit with ``code``."""
    err.print(f"[red]{message}[/red]")
    raise typer.Exit(code)


def settings() -> Settings:
    """Settings from the environment, with logging configured."""
    current = get_settings()
    configure_logging(current.log_format, current.log_level)
    return current


def open_store(current: Settings) -> Store:
    """The store at this release's schema, or exit 3 (unreachable, or not migrated).

    A laptop's SQLite store is brought up to date here (under the migration lock); a server
    database is only checked: `revops migrate` changes it, never a newer CLI by the way.
    """
    from store.repo import Store

    url = current.sqlalchemy_url
    try:
        return Store.open(
            url,
            id_secret=current.id_secret.get_secret_value(),
            run_migrations=url.startswith("sqlite"),
        )
    except StoreUnavailable as exc:
        fail(str(exc), 3)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; map our errors to exit codes."""
    try:
        return asyncio.run(coro)
    except (TemporalUnavailable, StoreUnavailable) as exc:
        fail(str(exc), 3)
    except NotFound as exc:
        fail(str(exc), 1)
    except ConfigError as exc:
        fail(str(exc), 2)


def resolve_contact(store: Store, user_id: str) -> str:
    """The opaque contact id of a user id, or exit 1."""
    contact_id = store.resolve(user_id)
    if contact_id is None:
        fail(f"no contact with user id {user_id!r}", 1)
    row = store.contact(contact_id)
    return row.merged_into if row is not None and row.merged_into else contact_id


def current_bundle(current: Settings, store: Store) -> ContactConfig:
    """The definitions contact workflows use now (deployed, else the shipped files)."""
    from definitions import Definitions

    try:
        return Definitions.of(store, current).contact_bundle()
    except ConfigError as exc:
        fail(str(exc), 2)


def operator() -> str:
    """Who is running the command, for change logs."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
