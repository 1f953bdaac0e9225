"""The local mail catcher ``revops dev`` starts, so a newcomer sees the journeys' emails.

An aiosmtpd server on the configured SMTP host and port keeps every message it receives in
the data directory's mailbox (``revops.mailbox``), where ``revops mail`` and the gateway's
``/dev/mail`` page show them. It starts only when the SMTP settings point at this machine and
nothing listens there yet: an SMTP server of your own (or a production relay) is used as is.
"""

from __future__ import annotations

import socket
from typing import Any

from aiosmtpd.controller import Controller

from revops.logging import get_logger
from revops.mailbox import Mailbox
from revops.settings import Settings

__all__ = ["MailCatcher", "wants_catcher"]

log = get_logger(__name__)

_LOCAL = frozenset({"127.0.0.1", "localhost", "::1"})


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wants_catcher(settings: Settings) -> bool:
    """True when the SMTP settings name this machine and nothing listens there."""
    if settings.smtp_host not in _LOCAL:
        return False
    return not _listening(settings.smtp_host, settings.smtp_port)


class _Keep:
    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd names it
        number = self._mailbox.save(bytes(envelope.original_content or envelope.content))
        log.info("mail_caught", id=number)
        return "250 Message accepted for delivery"


class MailCatcher:
    """aiosmtpd on the settings' SMTP host and port, keeping mail in the mailbox."""

    def __init__(self, settings: Settings) -> None:
        self.mailbox = Mailbox.of(settings.data_dir)
        self.host = "127.0.0.1" if settings.smtp_host == "localhost" else settings.smtp_host
        self.port = settings.smtp_port
        self._controller = Controller(_Keep(self.mailbox), hostname=self.host, port=self.port)

    def start(self) -> None:
        """Listen (in aiosmtpd's own thread)."""
        self._controller.start()

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()
