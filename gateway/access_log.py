"""Structured access logs for the gateway, without personal data.

One line per request: method, path, status, duration and how many events were stored. No
client address, no query string, no body, no user ids: the request's payload is personal data
and stays in the store. A plain ASGI middleware (not BaseHTTPMiddleware) so it costs
microseconds on the hot path.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from revops.logging import get_logger

__all__ = ["AccessLog"]


class AccessLog:
    """Log each HTTP request once it has been answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        state = scope.setdefault("state", {})

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            get_logger("gateway.access").info(  # bound per request: follows the current config
                "http_request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                events=state.get("events"),
                rejected=state.get("rejected"),
                refusal=state.get("refusal"),
            )
