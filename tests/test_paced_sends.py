"""Paced sending: a journey's email runs on the email channel's own task queue, whose rate
the Temporal server enforces across every worker; a 1,000-send broadcast goes out at the
configured rate, every email once."""

from __future__ import annotations

import asyncio
import bisect
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from email import message_from_bytes
from typing import Any

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from audience.consent import Consent
from journeys.contract import JourneyInput
from models.ingest import IncomingEvent
from revops.settings import Settings
from starter.simulate import simulation_environment
from store.effects import Ledger
from store.repo import Store
from tests.engagement_support import daytime_zone
from tests.journey_support import PERSON, contact, facts, journey, progress_when, start, took
from tests.sinks import free_port, smtp_sink
from tests.support import running_worker, save_history
from workflows.journey import JourneyWorkflow

ONE_EMAIL = """
steps:
  - {id: news, send: {channel: email, name: News, subject: "News", body: "https://example.com/n"}}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def journey_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping dev server whose timers fire at once (see tests/journey_support.py)."""
    async with simulation_environment() as environment:
        yield environment


async def test_a_journey_email_runs_on_the_email_channels_paced_queue(
    journey_env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    from tests.journey_support import journey_worker

    definition = journey(ONE_EMAIL)
    who = contact(store, "u-paced")
    with smtp_sink() as (port, inbox):
        configured = settings.model_copy(update={"smtp_port": port})
        async with journey_worker(journey_env, store, configured):
            handle = await start(journey_env, configured, definition, who, consent=Consent())
            await progress_when(handle, took("news"))
            await handle.result()
            history = await handle.fetch_history()
            await save_history(handle, "journey_local_check_send")
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    queues = {a.activity_type.name: a.task_queue.name for a in scheduled}
    assert queues["send_effect"] == f"{settings.task_queue}-send-email"
    # The send-time check runs inside the journey's task (a local activity: a marker, no
    # activity task through the server): one round trip less per send.
    assert "check_send" not in queues
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    assert markers, "the local check_send leaves a marker in the history"
    assert len(inbox) == 1


class _TimedInbox:
    def __init__(self) -> None:
        self.received: list[tuple[float, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        self.received.append((time.monotonic(), str(message["Message-ID"])))
        return "250 Message accepted for delivery"


@contextmanager
def timed_sink() -> Iterator[tuple[int, _TimedInbox]]:
    inbox = _TimedInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


BROADCAST = 1000
RATE = 10.0  # an ESP rate well under what one worker on two cores drives


@pytest.mark.faults
async def test_a_1000_send_broadcast_holds_the_rate_and_sends_each_email_once(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    """1,000 journeys want their email at once; the email queue's rate (10/s, enforced by the
    server for all workers) spreads them over ~100 s; each goes out exactly once."""
    definition = journey(ONE_EMAIL)
    now = facts("x").now
    people = [f"u-broadcast-{n}" for n in range(BROADCAST)]
    store.accept(
        [
            IncomingEvent(
                message_id=f"m-{uuid.uuid4()}",
                type="identify",
                name="Identify",
                user_id=who,
                traits={**PERSON, "email": f"{who}@acme-robotics.com"},
                timestamp=now,
                received_at=now,
            )
            for who in people
        ]
    )
    contacts = [store.resolve(who) for who in people]
    zone = daytime_zone()
    with timed_sink() as (port, inbox):
        configured = settings.model_copy(update={"smtp_port": port, "send_rates": {"email": RATE}})
        async with running_worker(env.client, store, configured):
            limit = asyncio.Semaphore(50)

            async def begin(contact_id: str | None) -> None:
                assert contact_id is not None
                data = JourneyInput(
                    contact_id=contact_id,
                    enrollment_id="broadcast",
                    definition=definition,
                    facts=facts(contact_id),
                    consent=Consent(),
                    time_zone=zone,
                )
                async with limit:
                    await env.client.start_workflow(
                        JourneyWorkflow.run,
                        data,
                        id=f"journey-{contact_id}-broadcast",
                        task_queue=configured.task_queue,
                    )

            await asyncio.gather(*(begin(c) for c in contacts))
            all_started = time.monotonic()
            deadline = time.monotonic() + BROADCAST / RATE * 2 + 60
            while len(inbox.received) < BROADCAST and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            await asyncio.sleep(2)  # anything extra (a send twice) would arrive now
    moments = sorted(at for at, _ in inbox.received)
    ids = [message_id for _, message_id in inbox.received]
    assert len(ids) == BROADCAST and len(set(ids)) == BROADCAST  # none lost, none twice
    # The first seconds are the journeys starting (fewer than the rate want to send yet, and
    # starts share the worker with sends); once every journey has started and 100 emails are
    # out, the queue has a backlog and the rate alone sets the pace until the last 50.
    first = max(100, bisect.bisect_left(moments, all_started))
    last = BROADCAST - 50
    assert last - first >= 300, f"only {last - first} emails sent with a backlog: no pace seen"
    steady = (last - first) / (moments[last] - moments[first])
    busiest = max(bisect.bisect_left(moments, at + 5.0) - i for i, at in enumerate(moments)) / 5
    total = moments[-1] - moments[0]
    print(
        f"broadcast: {BROADCAST} emails in {total:.1f} s, {steady:.1f}/s steady, at most "
        f"{busiest:.1f}/s over 5 s, limit {RATE:g}/s"
    )
    assert abs(steady - RATE) <= 0.1 * RATE, f"steady {steady:.1f}/s against {RATE:g}/s"
    # Never more than the rate, plus the one second's worth the server's limiter lets through
    # at once after the queue idled (its token bucket's burst).
    assert busiest * 5 <= 6 * RATE, f"{busiest:.1f}/s over 5 s against {RATE:g}/s"
    sent = sum(1 for c in contacts if c and Ledger(store).sends(c)[0].status == "sent")
    assert sent == BROADCAST
