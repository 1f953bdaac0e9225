"""The development mail page: ``/dev/mail`` lists what ``revops dev``'s catcher caught and
``/dev/mail/{id}`` shows one message, its headers and its rendered HTML (in a sandboxed
frame), so a newcomer can read a journey's email and click its tracked links. Mounted only by
``revops dev``, never by ``revops gateway``.
"""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gateway.http import GatewayError
from revops.mailbox import Mailbox

__all__ = ["dev_mail_router"]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 60rem; margin: 2rem auto;">
<h1>{title}</h1>{body}</body></html>
"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body))


def dev_mail_router(mailbox: Mailbox) -> APIRouter:
    """The pages over ``mailbox``."""
    router = APIRouter(prefix="/dev/mail", tags=["development"], include_in_schema=False)

    @router.get("")
    async def listing() -> HTMLResponse:
        rows = "".join(
            f'<tr><td><a href="/dev/mail/{m.id}">{m.id}</a></td>'
            f"<td>{html.escape(m.received_at.isoformat(timespec='seconds'))}</td>"
            f"<td>{html.escape(m.to)}</td><td>{html.escape(m.subject)}</td></tr>"
            for m in mailbox.messages()
        )
        table = (
            f"<table><tr><th>id</th><th>received</th><th>to</th><th>subject</th></tr>{rows}</table>"
            if rows
            else "<p>No mail caught yet.</p>"
        )
        return _page("Caught mail", table)

    @router.get("/{mail_id}")
    async def one(mail_id: int) -> HTMLResponse:
        mail = mailbox.get(mail_id)
        if mail is None:
            raise GatewayError(404, "not_found", f"no caught mail with id {mail_id}")
        headers = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in mail.headers
        )
        frame = html.escape(mail.html or f"<pre>{html.escape(mail.text)}</pre>", quote=True)
        body = (
            '<p><a href="/dev/mail">all mail</a></p>'
            f"<table>{headers}</table>"
            '<iframe sandbox="allow-popups allow-popups-to-escape-sandbox" '
            f'style="width:100%; height:40rem; border:1px solid #ccc" srcdoc="{frame}"></iframe>'
        )
        return _page(mail.subject or "(no subject)", body)

    return router
