"""``revops mail``: the mail ``revops dev`` caught, listed and shown (headers, text, HTML).

Journey emails in development go to the local mail catcher (``starter.mailcatcher``); these
commands read its mailbox under the data directory. ``show`` prints the headers, the text
part and the links (tracked links included, so a newcomer can click them); the gateway's
``/dev/mail`` page shows the rendered HTML.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import BaseModel
from rich.table import Table

from revops.mailbox import CaughtMail, Mailbox
from starter.common import console, fail, settings
from starter.output import JsonFlag, Moment, emit

__all__ = ["MailDetail", "MailList", "mail_app"]

mail_app = typer.Typer(
    help="Mail caught in development by `revops dev` (list, show).", invoke_without_command=True
)


class MailLine(BaseModel):
    """One caught message in the list."""

    id: int
    received_at: Moment
    sender: str
    to: str
    subject: str
    size: int


class MailList(BaseModel):
    """The caught mail, newest first."""

    mailbox: str
    messages: list[MailLine]


class MailDetail(MailLine):
    """One caught message in full."""

    headers: list[tuple[str, str]]
    text: str
    html: str
    links: list[str]


def _line(mail: CaughtMail) -> dict[str, object]:
    return {
        "id": mail.id,
        "received_at": mail.received_at,
        "sender": mail.sender,
        "to": mail.to,
        "subject": mail.subject,
        "size": mail.size,
    }


def _print_list(view: MailList) -> None:
    if not view.messages:
        console.print(f"no mail caught yet ({view.mailbox})")
        return
    table = Table("id", "received", "to", "subject", title=f"caught mail ({view.mailbox})")
    for line in view.messages:
        when = line.received_at.isoformat(timespec="seconds")
        table.add_row(str(line.id), when, line.to, line.subject)
    console.print(table)


def _print_detail(view: MailDetail) -> None:
    for key, value in view.headers:
        console.print(f"[bold]{key}:[/bold] {value}", highlight=False, soft_wrap=True)
    console.print()
    console.print(view.text, highlight=False, markup=False, soft_wrap=True)
    if view.links:
        console.print("[bold]links in the HTML part:[/bold]")
        for link in view.links:
            console.print(f"  {link}", highlight=False, markup=False, soft_wrap=True)


@mail_app.callback()
def overview(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The caught mail, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    mailbox = Mailbox.of(settings().data_dir)
    view = MailList(
        mailbox=str(mailbox.folder.resolve()),
        messages=[MailLine.model_validate(_line(m)) for m in mailbox.messages()],
    )
    emit(view, as_json, _print_list)


@mail_app.command("show")
def show(
    mail_id: Annotated[int, typer.Argument(help="The id `revops mail` lists.")],
    as_json: JsonFlag = False,
) -> None:
    """One caught message: headers, text part and links (the HTML at /dev/mail/ID)."""
    mail = Mailbox.of(settings().data_dir).get(mail_id)
    if mail is None:
        fail(f"no caught mail with id {mail_id}", 1)
    view = MailDetail.model_validate(
        {
            **_line(mail),
            "headers": mail.headers,
            "text": mail.text,
            "html": mail.html,
            "links": mail.links,
        }
    )
    emit(view, as_json, _print_detail)
