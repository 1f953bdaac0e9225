"""Composing an email that passes a spam filter's checks, with its tracked links and pixel.

Every message gets a From address from the settings, a Date, a Message-ID on the From
domain (derived from the idempotency key, so a retried send repeats it and receivers drop the
repeat), a plain-text and an HTML part (the HTML one is made from the text when the template
has none), and for marketing the RFC 8058 List-Unsubscribe and List-Unsubscribe-Post headers
with the link in both parts' footers. When tracking is on, every http(s) link in both parts
goes through the gateway's signed redirect and the HTML part ends with a 1x1 open pixel; the
unsubscribe link itself is never rewritten. A provider's metadata header (when the ESP is
named in the settings) carries the Message-ID, so its event webhooks name the send even when
the ESP replaces the header.
"""

from __future__ import annotations

import dataclasses
import email.policy
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from models.tracking import TrackingToken
from revops.settings import Settings

__all__ = ["MailParts", "compose", "from_domain", "message_id_for", "text_to_html"]

# Long header lines (the unsubscribe URL) stay whole instead of becoming RFC 2047 words.
MAIL_POLICY = email.policy.SMTP.clone(max_line_length=998)

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)
_URL = re.compile(r"""https?://[^\s<>"']+""")
_TRAILING = ".,;:!?)]}"


@dataclass(frozen=True)
class MailParts:
    """A rendered email before it becomes a MIME message."""

    to: str
    subject: str
    text: str
    html: str | None
    marketing: bool
    unsubscribe: str | None
    track_opens: bool
    track_clicks: bool


def from_domain(settings: Settings) -> str:
    """The domain of the From address (Message-IDs are made on it)."""
    address = parseaddr(settings.mail_from)[1]
    domain = address.rpartition("@")[2].strip().lower()
    return domain or "localhost"


def message_id_for(local: str, settings: Settings) -> str:
    """``<local@from-domain>``."""
    return f"<{local}@{from_domain(settings)}>"


def text_to_html(text: str) -> str:
    """A simple HTML rendering of a plain-text body: paragraphs, line breaks, live links."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    rendered = []
    for paragraph in paragraphs:
        escaped = html.escape(paragraph, quote=True)
        linked = _URL.sub(_anchor, escaped)
        rendered.append("<p>" + linked.replace("\n", "<br>\n") + "</p>")
    body = "\n".join(rendered)
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"></head>\n'
        f'<body style="font-family: sans-serif; line-height: 1.5;">\n{body}\n</body></html>\n'
    )


def _anchor(match: re.Match[str]) -> str:
    url, tail = _split_trailing(match.group(0))
    return f'<a href="{url}">{url}</a>{tail}'


def _split_trailing(url: str) -> tuple[str, str]:
    stripped = url.rstrip(_TRAILING)
    return stripped, url[len(stripped) :]


def rewrite_text(text: str, tracked: Callable[[str], str]) -> str:
    """Every http(s) URL in plain text replaced by its tracked link."""

    def one(match: re.Match[str]) -> str:
        url, tail = _split_trailing(match.group(0))
        return tracked(url) + tail

    return _URL.sub(one, text)


def rewrite_html(body: str, tracked: Callable[[str], str]) -> str:
    """Every ``<a href="http(s)://...">`` replaced by its tracked link."""

    def one(match: re.Match[str]) -> str:
        url = html.unescape(match.group(3))
        link = html.escape(tracked(url), quote=True)
        return f"{match.group(1)}{match.group(2)}{link}{match.group(2)}"

    return _HREF.sub(one, body)


def _with_footer(body: str, footer: str) -> str:
    """``footer`` (HTML) placed before ``</body>`` when there is one, else appended."""
    index = body.lower().rfind("</body>")
    if index < 0:
        return body + footer
    return body[:index] + footer + body[index:]


def _provider_header(message: EmailMessage, settings: Settings, message_id: str) -> None:
    """The ESP's own metadata header, which its event webhooks echo back."""
    core = message_id.strip("<>")
    provider = settings.mail_provider
    if provider == "sendgrid":
        message["X-SMTPAPI"] = json.dumps({"unique_args": {"revops_message_id": core}})
    elif provider == "mailgun":
        message["X-Mailgun-Variables"] = json.dumps({"revops_message_id": core})
    elif provider == "postmark":
        message["X-PM-Metadata-revops_message_id"] = core
    elif provider == "ses":
        message["X-SES-MESSAGE-TAGS"] = f"revops_message_id={core.split('@')[0]}"


def compose(
    parts: MailParts,
    *,
    settings: Settings,
    message_id: str,
    now: datetime,
    token: TrackingToken,
) -> EmailMessage:
    """The finished MIME message (multipart/alternative: text, then HTML)."""
    secret = settings.id_secret.get_secret_value()
    base = settings.recipient_url

    def tracked(url: str) -> str:
        if not parts.track_clicks or url == parts.unsubscribe:
            return url
        return dataclasses.replace(token, url=url).link(base, secret)

    text = rewrite_text(parts.text, tracked)
    body_html = rewrite_html(parts.html or text_to_html(parts.text), tracked)
    footer_html = ""
    if parts.unsubscribe:
        text += f"\n\n--\nUnsubscribe: {parts.unsubscribe}\n"
        link = html.escape(parts.unsubscribe, quote=True)
        footer_html += (
            '<p style="font-size: 12px; color: #666;">'
            f'<a href="{link}">Unsubscribe</a> from these emails.</p>\n'
        )
    if parts.track_opens:
        pixel = html.escape(token.link(base, secret), quote=True)
        footer_html += f'<img src="{pixel}" width="1" height="1" alt="" style="display:none">\n'
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = settings.mail_from
    message["To"] = parts.to
    message["Subject"] = parts.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    if parts.unsubscribe:
        message["List-Unsubscribe"] = f"<{parts.unsubscribe}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    _provider_header(message, settings, message_id)
    message.set_content(text)
    message.add_alternative(_with_footer(body_html, footer_html), subtype="html")
    return message


def envelope_sender(settings: Settings) -> str:
    """The bare address of the From setting (the SMTP envelope sender)."""
    address = parseaddr(settings.mail_from)[1]
    return address or str(Address(addr_spec=settings.mail_from))
