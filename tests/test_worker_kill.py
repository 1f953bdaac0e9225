"""Two workers share the load; one is killed (SIGKILL) mid-send; the other finishes everything.

Thirty contacts each get a journey email through two worker processes (each tags its mail with
its own From address, so the SMTP server sees which worker sends). The first worker is killed
while the SMTP server holds one of its sends at RCPT TO (before any content went out). Its
workflows move to the survivor (sticky queue timeout), and its unfinished sends time out
(``send_timeout``) and are retried there with the same idempotency key. Every contact gets its
email; no key is sent twice except in the one window the send ledger documents (a crash
between the server accepting DATA and the ledger mark), and then with the same Message-ID,
which receivers use to drop the repeat.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from temporalio.testing import WorkflowEnvironment

from revops.settings import Settings
from starter.simulate import simulation_environment
from store.effects import Ledger
from store.repo import Store
from tests.conftest import ID_SECRET, REPO
from tests.journey_support import contact, journey, start, worker_process
from tests.sinks import free_port

CONTACTS = 30
DOOMED = "worker-a@example.com"
SURVIVOR = "worker-b@example.com"
JOURNEY = """
send_timeout: 3
steps:
  - {id: welcome, send: {channel: email, name: Welcome, subject: "Welcome", body: "Hello"}}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def journey_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping dev server whose timers fire at once (see tests/journey_support.py)."""
    async with simulation_environment() as environment:
        yield environment


class _SlowInbox:
    """An SMTP server that takes 0.5 s per recipient, and notes who is sending right now."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.doomed_at_rcpt = threading.Event()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if envelope.mail_from == DOOMED:
            self.doomed_at_rcpt.set()
        await asyncio.sleep(0.5)
        if envelope.mail_from == DOOMED:
            self.doomed_at_rcpt.clear()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@contextmanager
def slow_inbox() -> Iterator[tuple[int, _SlowInbox]]:
    handler = _SlowInbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, handler
    finally:
        controller.stop()


@pytest.mark.slow
async def test_a_worker_killed_under_load_leaves_its_sends_to_the_other_once(
    journey_env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    definition = journey(JOURNEY)
    people = [contact(store, f"u-load-{i}") for i in range(CONTACTS)]
    with slow_inbox() as (port, inbox):
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
        async with (
            worker_process({**environ, "REVOPS_MAIL_FROM": DOOMED}) as doomed,
            worker_process({**environ, "REVOPS_MAIL_FROM": SURVIVOR}),
        ):
            handles = await asyncio.gather(
                *(start(journey_env, settings, definition, who) for who in people)
            )
            killed = await asyncio.to_thread(inbox.doomed_at_rcpt.wait, 60)
            assert killed, "the first worker never sent anything"
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait()
            delivered_before_kill = len(inbox.messages)
            await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 120)

    sends = [row for who in people for row in Ledger(store).sends(who)]
    assert len(sends) == CONTACTS and {row.status for row in sends} == {"sent"}
    retried = [row for row in sends if row.attempts > 1]
    assert retried, "the killed worker's send was retried"
    ids = Counter(message["Message-ID"] for message in inbox.messages)
    assert len(ids) == CONTACTS  # every contact got its email
    repeats = {key: n for key, n in ids.items() if n > 1}
    assert len(repeats) <= len(retried) and all(n == 2 for n in repeats.values()), repeats
    senders = Counter(message["From"] for message in inbox.messages)
    assert senders[SURVIVOR] >= CONTACTS - delivered_before_kill  # all after the kill
    print(
        f"{CONTACTS} sends, worker killed after {delivered_before_kill}: {len(retried)} retried "
        f"on the survivor, {sum(repeats.values()) - len(repeats)} repeated (same Message-ID)"
    )
