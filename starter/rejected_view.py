"""``revops events rejected``: the tracking API's dead-letter table, for an operator.

Shows when, where in which batch, and why each refused call was refused; ``--json`` adds the
call as it was sent, so it can be fixed and posted again.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from rich.table import Table

from starter.common import console
from starter.output import Moment
from store.rejected import RejectedBook
from store.repo import Store

__all__ = ["RejectedView", "load_rejected", "print_rejected"]


class RejectedCallView(BaseModel):
    """One refused call."""

    at: Moment
    path: str
    index: int
    code: str
    field: str | None
    reason: str
    message_id: str | None
    call: Any


class RejectedView(BaseModel):
    """The latest refused calls, newest first."""

    rejected: list[RejectedCallView]


def load_rejected(store: Store, limit: int) -> RejectedView:
    """The ``limit`` latest refused calls."""
    return RejectedView(
        rejected=[
            RejectedCallView(
                at=r.received_at,
                path=r.path,
                index=r.index,
                code=r.code,
                field=r.field,
                reason=r.reason,
                message_id=r.message_id,
                call=r.call,
            )
            for r in RejectedBook(store).recent(limit=limit)
        ]
    )


def print_rejected(view: RejectedView) -> None:
    """A table: when, which call of which request, why."""
    if not view.rejected:
        console.print("No refused calls.")
        return
    table = Table("received", "request", "call", "messageId", "reason")
    for row in view.rejected:
        table.add_row(
            row.at.strftime("%Y-%m-%d %H:%M:%S"),
            row.path,
            f"[{row.index}]",
            row.message_id or "-",
            row.reason,
        )
    console.print(table)
