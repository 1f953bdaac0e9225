"""``revops contacts erase`` and ``revops contacts export``: a person's privacy requests.

Erase runs ``privacy.erasure`` (the gateway's signed ``/v1/privacy/erasures`` runs the same):
every row and every Temporal execution of the person goes; hashes and counts stay
(docs/privacy.md). The operator who runs it is recorded with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.privacy import ErasureResponse, response_of
from privacy.erasure import MAX_REASON, erase_person
from revops.temporal import connect
from starter.common import console, err, fail, open_store, operator, run_async, settings
from starter.output import JsonFlag, emit, json_text
from store.export import export_person

__all__ = ["erase", "export"]


def _print_erasure(view: ErasureResponse) -> None:
    if view.already:
        console.print(
            f"already erased on {view.requested_at:%Y-%m-%d %H:%M} UTC by {view.erased_by} "
            f"({view.reason}); nothing left to remove"
        )
        return
    rows = sum(view.rows_removed.values())
    console.print(
        f"erased: {rows} rows in {len(view.rows_removed)} tables, "
        f"{view.workflows_deleted} workflow executions deleted"
    )
    console.print(
        f"kept: the erasure record {view.subject_hash[:16]}…, the hashed address on the "
        "suppression list, refused ids (docs/privacy.md)"
    )


def erase(
    user_id: Annotated[str, typer.Argument(help="The person's user id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the erasure record).")],
    as_json: JsonFlag = False,
) -> None:
    """Erase a person everywhere: store rows and Temporal executions (idempotent)."""
    if not reason.strip() or len(reason.strip()) > MAX_REASON:
        raise typer.BadParameter(
            f"a reason of 1 to {MAX_REASON} characters is required", param_hint="--reason"
        )
    current = settings()
    store = open_store(current)

    async def _erase() -> ErasureResponse:
        client = await connect(current)
        ticket = await erase_person(
            store, client, user_id, reason=reason, erased_by=f"cli:{operator()}"
        )
        return response_of(ticket)

    emit(run_async(_erase()), as_json, _print_erasure)


def export(
    user_id: Annotated[str, typer.Argument(help="The person's user id.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default stdout).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Accepted for symmetry: the export is JSON anyway.")
    ] = True,
) -> None:
    """Everything held about a person as one JSON document (an access request)."""
    current = settings()
    store = open_store(current)
    document = export_person(store, user_id)
    if document is None:
        fail(f"no contact with user id {user_id!r}", 1)
    text = json_text(document)
    if output is None:
        print(text, flush=True)
        return
    output.write_text(text + "\n", encoding="utf-8")
    err.print(f"exported {user_id} to {output}")
