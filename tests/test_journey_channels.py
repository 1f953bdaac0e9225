"""Journey sends against real servers: one-click unsubscribe through the running gateway, and
a worker process killed in the middle of a send."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from temporalio.testing import WorkflowEnvironment

from audience.consent import Consent
from revops.ids import short_hash
from revops.settings import Settings
from starter.simulate import simulation_environment
from store.effects import Ledger
from store.repo import Store
from store.schema import EventRow
from tests.conftest import ID_SECRET, REPO
from tests.gateway_support import serve_gateway
from tests.journey_support import (
    contact,
    journey,
    journey_worker,
    progress,
    progress_when,
    skip,
    start,
    ten_am,
    took,
    worker_process,
)
from tests.sinks import free_port, smtp_sink
from tests.support import eventually


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def journey_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping dev server whose timers fire at once (see tests/journey_support.py)."""
    async with simulation_environment() as environment:
        yield environment


UNSUBSCRIBE_JOURNEY = """
steps:
  - {id: first, send: {channel: email, name: First, subject: "First", body: "Hello"}}
  - {id: gap, wait: 2d}
  - {id: second, send: {channel: email, name: Second, subject: "Second", body: "Again"}}
"""


async def test_one_click_unsubscribe_while_a_journey_waits_stops_its_next_marketing_email(
    journey_env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    definition = journey(UNSUBSCRIBE_JOURNEY)
    who = contact(store, "u-unsub")
    with smtp_sink() as (port, inbox):
        configured = settings.model_copy(update={"smtp_port": port})
        async with journey_worker(journey_env, store, configured):
            handle = await start(journey_env, configured, definition, who, consent=Consent())
            await progress_when(handle, lambda p: p.current_step == "gap")
            (first,) = inbox
            token = parse_qs(urlsplit(first["List-Unsubscribe"].strip("<>")).query)["token"][0]
            async with serve_gateway(configured, store) as base, httpx.AsyncClient() as http:
                page = await http.get(f"{base}/v1/unsubscribe", params={"token": token})
                forged = await http.post(f"{base}/v1/unsubscribe", params={"token": token + "0"})
                answer = await http.post(
                    f"{base}/v1/unsubscribe",
                    params={"token": token},
                    content="List-Unsubscribe=One-Click",
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            await skip(journey_env, handle, ten_am() + definition.steps[1].wait.for_)  # type: ignore[union-attr, operator]
            await handle.result()
            state = await progress(handle)
    assert page.status_code == 200 and 'method="post"' in page.text
    assert forged.status_code == 400
    assert (answer.status_code, answer.json()) == (200, {"status": "unsubscribed"})
    row = store.contact(who)
    assert row is not None and row.consent["subscribed"] is False
    assert _stored_events(store, who).count("Unsubscribed") == 1
    second = next(s for s in state.steps if s.step == "second")
    assert second.outcome == "suppressed" and "unsubscribed" in second.detail
    assert [m["Subject"] for m in inbox] == ["First"]


def _stored_events(store: Store, contact_id: str) -> list[str]:
    with store._sessions() as session:
        return [r.name for r in session.query(EventRow).filter(EventRow.contact_id == contact_id)]


# ---- the crash test ----------------------------------------------------------------------------


class _HoldFirstRecipient:
    """An SMTP server that holds its reply to the first RCPT TO until released.

    The client is then stuck mid-transaction: the message content (DATA) has not been sent,
    so nothing can be delivered from that session.
    """

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.held = threading.Event()
        self.release = threading.Event()
        self._first = True

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self._first:
            self._first = False
            self.held.set()
            while not self.release.is_set():
                await asyncio.sleep(0.05)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@contextmanager
def holding_smtp_sink() -> Iterator[tuple[int, _HoldFirstRecipient]]:
    handler = _HoldFirstRecipient()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, handler
    finally:
        handler.release.set()
        controller.stop()


CRASH_JOURNEY = """
send_timeout: 3
steps:
  - {id: welcome, send: {channel: email, name: Welcome, subject: "Welcome", body: "Hello"}}
"""


@pytest.mark.slow
async def test_a_worker_killed_mid_send_delivers_the_email_exactly_once_after_restart(
    journey_env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    """SIGKILL lands after the ledger claimed the key and inside the SMTP transaction.

    Window covered: the send activity has recorded its key in the ledger ("claimed") and is
    talking to the SMTP server, which holds its reply to RCPT TO; the worker process is
    killed there, before the message content was transmitted. An SMTP server takes
    responsibility for a message only when it answers the end of DATA, so the dead session
    delivered nothing. The activity's start-to-close timeout (``send_timeout``) expires and
    Temporal retries the same activity with the same input on the restarted worker: the key
    (``<contact>/<enrollment>/<step>``) is in the workflow history, not recomputed. The ledger
    sees the key claimed but not sent and lets the retry send; the retry delivers, marks the
    key sent, and any later retry would answer "duplicate". Result: exactly one message.

    The one window this cannot cover is a crash after the server accepted DATA but before the
    ledger mark: a retry then sends again, with the same Message-ID (derived from the key),
    which receivers use to drop the repeat (docs/journeys.md, "Exactly once").
    """
    definition = journey(CRASH_JOURNEY)
    who = contact(store, "u-crash")
    with holding_smtp_sink() as (port, smtp):
        environ = {
            **os.environ,
            "REVOPS_TEMPORAL_ADDRESS": journey_env.client.service_client.config.target_host,
            "REVOPS_TASK_QUEUE": settings.task_queue,
            "REVOPS_PRIORITY_TASK_QUEUE": settings.priority_task_queue,
            "REVOPS_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
            "REVOPS_ID_SECRET": ID_SECRET,
            "REVOPS_SMTP_PORT": str(port),
            "REVOPS_CONFIG_DIR": str(REPO / "config"),
            "REVOPS_JOURNEYS_DIR": str(REPO / "config" / "journeys"),
            "REVOPS_LOG_LEVEL": "WARNING",
        }
        async with worker_process(environ) as first:
            handle = await start(journey_env, settings, definition, who, enrollment_id="crash1")
            assert await asyncio.to_thread(smtp.held.wait, 30), "the send never reached RCPT"
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        key = f"{who}/crash1/welcome"
        (claimed,) = Ledger(store).sends(who)
        assert (claimed.key, claimed.status) == (key, "claimed")
        smtp.release.set()
        async with worker_process(environ):
            await eventually(lambda: progress(handle), took("welcome"), within=60)
            await handle.result()
    (row,) = Ledger(store).sends(who)
    assert (row.status, row.attempts) == ("sent", 2)
    (message,) = smtp.messages
    assert message["Message-ID"] == f"<{short_hash(key)}@example.com>"
    assert message["Subject"] == "Welcome"
