"""The same validate / deploy / rollback / history commands for every kind of definition.

One implementation, mounted under ``revops lists``, ``revops scoring``, ``revops routing`` ...,
so every definition has the same life cycle and the same audit trail (the registry).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from revops.definitions import read_definition_file
from revops.errors import ConfigError, NotFound, ValidationFailed
from revops.temporal import connect
from starter.broadcast import broadcast_definitions_changed, live_contact_ids
from starter.common import console, fail, open_store, operator, run_async, settings
from store.registry import Registry

__all__ = ["add_definition_commands"]


def add_definition_commands(app: typer.Typer, kind: str, *, reevaluate: bool) -> None:
    """Mount validate/deploy/rollback/history for ``kind`` on ``app``.

    With ``reevaluate``, a deploy or rollback tells every running contact to re-evaluate
    (lists, scores) in the background, with a progress bar.
    """

    @app.command("validate")
    def validate(
        paths: Annotated[list[Path], typer.Argument(help="Definition files to check.")],
    ) -> None:
        """Check files without deploying; exit 2 with every error found."""
        errors = []
        for path in paths:
            try:
                read_definition_file(kind, path)
            except ConfigError as exc:
                errors.append(str(exc))
        if errors:
            fail("\n".join(errors), 2)
        console.print(f"{len(paths)} {kind} file(s) valid")

    @app.command("deploy")
    def deploy(
        path: Annotated[Path, typer.Argument(help="The definition file.")],
        comment: Annotated[str, typer.Option(help="Why (kept in the change log).")] = "",
    ) -> None:
        """Validate and deploy a new version; new evaluations use it."""
        try:
            body, _ = read_definition_file(kind, path)
        except ConfigError as exc:
            fail(str(exc), 2)
        current = settings()
        store = open_store(current)
        result = Registry(store).deploy(kind, "default", body, author=operator(), comment=comment)
        if not result.changed:
            console.print(f"{kind}: unchanged, v{result.version} stays active")
            return
        console.print(result.diff or "(first version)")
        console.print(f"{kind}: v{result.version} deployed")
        if reevaluate:
            _reevaluate(kind)

    @app.command("rollback")
    def rollback() -> None:
        """Return to the previous version."""
        current = settings()
        store = open_store(current)
        try:
            row = Registry(store).rollback(kind, "default", author=operator())
        except NotFound as exc:
            fail(str(exc), 1)
        except ValidationFailed as exc:
            fail(str(exc), 2)
        console.print(f"{kind}: rolled back to v{row.version}")
        if reevaluate:
            _reevaluate(kind)

    @app.command("history")
    def history(
        diff: Annotated[bool, typer.Option("--diff", help="Show each change's diff.")] = False,
    ) -> None:
        """The change log: who changed what, when."""
        store = open_store(settings())
        table = Table("when", "action", "version", "from", "who")
        changes = Registry(store).changes(kind)
        for change in changes:
            table.add_row(
                change.at.isoformat(timespec="seconds"),
                change.action,
                f"v{change.version}",
                f"v{change.previous_version}" if change.previous_version else "-",
                change.author,
            )
        console.print(table if changes else f"{kind}: nothing deployed yet (shipped file in use)")
        if diff:
            for change in changes:
                console.print(change.diff)


def _reevaluate(kind: str) -> None:
    current = settings()
    store = open_store(current)
    contacts = live_contact_ids(store)
    revision = str(Registry(store).revision())

    async def _send() -> int:
        client = await connect(current)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"re-evaluating contacts ({kind})", total=len(contacts))
            return await broadcast_definitions_changed(
                client, contacts, revision, progress=lambda n: progress.advance(task, n)
            )

    reached = run_async(_send())
    console.print(f"{reached} running contact(s) re-evaluating in the background")
