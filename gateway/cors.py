"""CORS for the tracking API, so the browser library can post from a website's own pages.

analytics.js posts from the visitor's browser to another origin (the gateway). A ``text/plain``
POST without custom headers is a "simple" request that needs no preflight, but the browser
still refuses to hand the answer to the page unless it carries ``Access-Control-Allow-Origin``;
a page that sets ``Authorization`` or ``Content-Type: application/json`` is preflighted with
``OPTIONS``. Only the tracking paths get CORS: webhooks, tracking links and the dashboard are
never called from other origins' pages, so they answer no preflight.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["TrackingCors", "is_tracking_path"]

_PREFLIGHT_MAX_AGE = 86_400
"""Browsers cache a preflight this long (seconds; Chromium caps it at 2 hours)."""


def is_tracking_path(path: str) -> bool:
    """``/v1/<call>``: the Segment tracking API (not ``/v1/webhooks/...``)."""
    return path.startswith("/v1/") and not path.startswith("/v1/webhooks/")


class TrackingCors:
    """Starlette's CORS middleware, applied to the tracking paths only."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        self.app = app
        self.cors: ASGIApp | None = (
            CORSMiddleware(
                app,
                allow_origins=list(origins),
                allow_methods=["POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
                allow_credentials=False,
                max_age=_PREFLIGHT_MAX_AGE,
            )
            if origins
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.cors is not None and scope["type"] == "http" and is_tracking_path(scope["path"]):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
