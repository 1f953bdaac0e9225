"""The development mailbox: mail caught by ``revops dev``'s local SMTP server, kept as files.

Each caught message is one ``.eml`` file under ``<data dir>/mail/``, named by a sequence
number (its id: ``revops mail show 7``), so it survives restarts and can be opened with any
mail client. ``revops mail`` and the gateway's development page (``/dev/mail``) read it here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

__all__ = ["CaughtMail", "Mailbox"]

_NAME = re.compile(r"^(\d{6})\.eml$")
_LINK = re.compile(r"""href=["'](https?://[^"']+)["']""")


@dataclass(frozen=True)
class CaughtMail:
    """One caught message, parsed."""

    id: int
    received_at: datetime
    sender: str
    to: str
    subject: str
    size: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    html: str = ""

    @property
    def links(self) -> list[str]:
        """The links of the HTML part, in order (tracked links included)."""
        return _LINK.findall(self.html)


class Mailbox:
    """Caught mail in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def of(cls, data_dir: Path) -> Mailbox:
        """The mailbox of a data directory."""
        return cls(data_dir / "mail")

    def save(self, raw: bytes) -> int:
        """Keep one message; returns its id."""
        self.folder.mkdir(parents=True, exist_ok=True)
        number = max(self._ids(), default=0) + 1
        (self.folder / f"{number:06d}.eml").write_bytes(raw)
        return number

    def messages(self) -> list[CaughtMail]:
        """Every caught message, newest first."""
        found = [self.get(number) for number in sorted(self._ids(), reverse=True)]
        return [mail for mail in found if mail is not None]

    def get(self, number: int) -> CaughtMail | None:
        """One message by id, or None."""
        path = self.folder / f"{number:06d}.eml"
        if not path.is_file():
            return None
        raw = path.read_bytes()
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        return CaughtMail(
            id=number,
            received_at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
            sender=str(message.get("From", "")),
            to=str(message.get("To", "")),
            subject=str(message.get("Subject", "")),
            size=len(raw),
            headers=[(key, str(value)) for key, value in message.items()],
            text=_part(message, "plain"),
            html=_part(message, "html"),
        )

    def _ids(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return [int(m.group(1)) for p in self.folder.iterdir() if (m := _NAME.match(p.name))]


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    if body is None or body.get_content_subtype() != subtype:
        return ""
    content = body.get_content()
    return content if isinstance(content, str) else ""
