"""Tracked clicks and opens: the signed redirect and the open pixel of marketing email.

``GET /t/c/<token>`` redirects (302) to the link the token names; ``GET /t/o/<token>``
answers a 1x1 GIF. Both answer from the token alone (``models.tracking``): a forged, altered or
unknown token gets a 400 and nothing is recorded, and nothing on the way waits for the store
or Temporal. The hit is put on an in-process queue that a writer thread drains in batches
(every 100 ms) into the normal ingest path (``gateway.feedback``), so a click costs the
recipient a signature check, not a database transaction behind the ingest lock. A hit still
queued when the process is killed (not stopped) is lost; the redirect itself never fails.

Machines are told from people by what they send, and their hits are recorded as machine
traffic (no event, not in the unique counts; docs/email.md):
- a HEAD request, an empty User-Agent, or a User-Agent of a known scanner, crawler or tool;
- an open fetched by Apple Mail Privacy Protection (User-Agent exactly ``Mozilla/5.0``, or
  an address in Apple's 17.0.0.0/8);
- a click sooner than ``tracking_scanner_seconds`` after the send (security gateways follow
  every link on delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import queue
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gateway.feedback import Feedback, apply_feedback
from gateway.http import GatewayError
from models.tracking import TrackingToken
from revops.logging import get_logger
from revops.settings import Settings
from store.repo import Store

__all__ = ["PIXEL", "TrackingWriter", "machine_reason", "router"]

log = get_logger(__name__)

router = APIRouter(prefix="/t", tags=["tracking links"], include_in_schema=True)

PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
_NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}
_MACHINE_AGENTS = re.compile(
    r"bot\b|crawler|spider|scanner|preview|barracuda|mimecast|proofpoint|safelinks|"
    r"symantec|forcepoint|trendmicro|sophos|fortiguard|cisco|ironport|"
    r"python-|curl/|wget/|go-http-client|java/|okhttp|libwww|httpclient",
    re.IGNORECASE,
)
_APPLE = ipaddress.ip_network("17.0.0.0/8")
_BATCH = 500
_PAUSE = 0.1


def machine_reason(
    *,
    method: str,
    user_agent: str,
    client: str | None,
    token: TrackingToken,
    now: float,
    scanner_seconds: float,
) -> str | None:
    """Why a hit looks like a machine's, or None when a person made it."""
    if method == "HEAD":
        return "HEAD request"
    agent = user_agent.strip()
    if not agent:
        return "no User-Agent"
    if _MACHINE_AGENTS.search(agent):
        return "scanner or tool User-Agent"
    if token.purpose == "open" and (agent == "Mozilla/5.0" or _in_apple(client)):
        return "mail privacy prefetch"
    if token.purpose == "click" and now - token.sent_at < scanner_seconds:
        return f"clicked within {scanner_seconds:g}s of the send"
    return None


def _in_apple(client: str | None) -> bool:
    if not client:
        return False
    try:
        return ipaddress.ip_address(client) in _APPLE
    except ValueError:
        return False


class TrackingWriter:
    """Drains queued hits into the store in batches, on its own thread."""

    def __init__(
        self, store: Store, settings: Settings, wake: Callable[[], None] | None = None
    ) -> None:
        self._store = store
        self._settings = settings
        self._wake = wake
        self._queue: queue.SimpleQueue[Feedback] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def put(self, item: Feedback) -> None:
        """Queue one hit (never blocks)."""
        with self._lock:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tracking-writer", daemon=True
                )
                self._thread.start()
        self._queue.put(item)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued hit is written; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        self.flush()
        self._stopping = True
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping:
            batch = self._take()
            if not batch:
                continue
            try:
                self._write(batch)
            finally:
                with self._lock:
                    self._pending -= len(batch)
                    self._lock.notify_all()

    def _take(self) -> list[Feedback]:
        try:
            batch = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + _PAUSE
        while len(batch) < _BATCH:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[Feedback]) -> None:
        for attempt in range(3):
            try:
                result = apply_feedback(
                    self._store, batch, soft_bounce_limit=self._settings.soft_bounce_limit
                )
            except Exception as exc:  # the store is down: retry, then give up on the batch
                log.warning("tracking_write_failed", attempt=attempt + 1, error=str(exc)[:200])
                time.sleep(0.5 * (attempt + 1))
                continue
            if result.events and self._wake is not None:
                self._wake()
            return
        log.error("tracking_hits_dropped", hits=len(batch))


def _writer(request: Request) -> TrackingWriter:
    writer: TrackingWriter | None = getattr(request.app.state, "tracking_writer", None)
    if writer is None:
        writer = TrackingWriter(
            request.app.state.store, request.app.state.settings, _waker(request)
        )
        request.app.state.tracking_writer = writer
    return writer


def _waker(request: Request) -> Callable[[], None] | None:
    relay = request.app.state.relay
    if relay is None:
        return None
    loop = asyncio.get_running_loop()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: the relay polls anyway
            loop.call_soon_threadsafe(relay.notify)

    return wake


def _hit(request: Request, token: str, purpose: str) -> tuple[TrackingToken, Feedback]:
    settings: Settings = request.app.state.settings
    found = TrackingToken.decode(
        token, settings.id_secret.get_secret_value(), "click" if purpose == "click" else "open"
    )
    if found is None:
        raise GatewayError(400, "invalid_token", f"this {purpose} link is not valid")
    now = time.time()
    reason = machine_reason(
        method=request.method,
        user_agent=request.headers.get("user-agent", ""),
        client=request.client.host if request.client else None,
        token=found,
        now=now,
        scanner_seconds=settings.tracking_scanner_seconds,
    )
    feedback = Feedback(
        kind="clicked" if found.purpose == "click" else "opened",
        source="tracking",
        at=datetime.fromtimestamp(now, UTC),
        message_id=f"<{found.message_id}>",
        url=found.url,
        machine=reason is not None,
    )
    return found, feedback


@router.head("/c/{token}", include_in_schema=False)
@router.get("/c/{token}", summary="Tracked link (redirect)")
async def click(request: Request, token: str) -> Response:
    """Redirect to the link the signed token names and count the click."""
    found, feedback = _hit(request, token, "click")
    _writer(request).put(feedback)
    assert found.url is not None
    return RedirectResponse(found.url, status_code=302, headers=_NO_STORE)


@router.get("/o/{token}", summary="Open pixel")
async def pixel(request: Request, token: str) -> Response:
    """A transparent 1x1 GIF; counts an open of the email the token names."""
    _, feedback = _hit(request, token, "open")
    _writer(request).put(feedback)
    return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)
