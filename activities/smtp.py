"""SMTP connections a worker keeps open and reuses: one connection per message does not survive
a broadcast (every message would pay TCP, TLS and AUTH again, and relays throttle new
connections long before they throttle messages).

The pool holds up to ``smtp_connections`` connections. A send takes an idle one (or opens one
while under the limit, else waits), sends, and gives it back. A connection the server closed
while idle, or that failed mid-command, is dropped and the message goes once more over a new
one; a refusal (a 4xx/5xx answer) is raised after a ``RSET`` so the connection stays usable.
After ``smtp_messages_per_connection`` messages a connection is replaced (relays cap messages
per connection). Pools belong to one event loop: a new loop starts a new pool.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiosmtplib

from revops.logging import get_logger
from revops.settings import Settings

__all__ = ["SmtpPool"]

log = get_logger(__name__)

_BROKEN = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, ConnectionError)


@dataclass
class _Connection:
    client: aiosmtplib.SMTP
    sent: int = 0


class SmtpPool:
    """Pooled aiosmtplib connections to the configured SMTP server."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.opened = 0
        """Connections opened so far (for tests and logs)."""

    async def send(self, message: bytes, sender: str, recipients: list[str]) -> None:
        """Deliver one serialised message; raises aiosmtplib errors the server gave."""
        async with self._slot():
            connection = self._idle.pop() if self._idle else None
            connection = await self._deliver(connection, message, sender, recipients)
            if connection is not None:
                self._idle.append(connection)

    async def aclose(self) -> None:
        """Say QUIT on every idle connection."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await _close(connection)

    def _slot(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._loop = loop
            self._idle = []
            self._slots = asyncio.Semaphore(self._settings.smtp_connections)
        return self._slots

    async def _deliver(
        self, connection: _Connection | None, message: bytes, sender: str, recipients: list[str]
    ) -> _Connection | None:
        limit = self._settings.smtp_messages_per_connection
        for attempt in (1, 2):
            if connection is not None and (
                connection.sent >= limit or not connection.client.is_connected
            ):
                await _close(connection)
                connection = None
            if connection is None:
                connection = await self._open()
            try:
                await connection.client.sendmail(sender, recipients, message)
            except _BROKEN as exc:
                await _close(connection)
                connection = None
                if attempt == 2:
                    raise
                log.info("smtp_reconnect", reason=type(exc).__name__)
                continue
            except aiosmtplib.SMTPException:
                with contextlib.suppress(aiosmtplib.SMTPException, ConnectionError):
                    await connection.client.rset()
                self._idle.append(connection)
                raise
            connection.sent += 1
            return connection
        return None

    async def _open(self) -> _Connection:
        settings = self._settings
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        client = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password,
            start_tls=settings.smtp_tls,
            timeout=settings.http_timeout_seconds,
        )
        await client.connect()
        self.opened += 1
        return _Connection(client)


async def _close(connection: _Connection) -> None:
    with contextlib.suppress(aiosmtplib.SMTPException, ConnectionError, OSError):
        if connection.client.is_connected:
            await connection.client.quit()
    connection.client.close()
