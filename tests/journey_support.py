"""Helpers for journey tests: contacts, starting journeys, reading their progress.

Journey test modules each run a ``journey_env`` fixture: a dev server like the session's
``env`` plus the timer flag of simulations (``starter.simulate.SERVER_ARGS``: due timers fire
at once instead of up to a second late), so a journey with ten waits runs in about a second.
Journeys start at the next 10:00 UTC (``not_before``) so quiet hours never blur what a test
checks, whatever the time the suite runs at.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from typing import Any

import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from audience.consent import Consent
from audience.facts import ContactFacts, EventRecord
from journeys.contract import JourneyContactUpdate, JourneyInput, JourneyProgress
from journeys.definition import JourneyDefinition, parse_journey
from journeys.program import next_local_time
from revops.settings import Settings
from store.repo import Store
from tests.conftest import REPO
from tests.support import eventually, track
from worker import WORKFLOWS, WorkerDeps, send_workers
from workflows.journey import JourneyWorkflow

PERSON: dict[str, Any] = {
    "email": "ada@acme-robotics.com",
    "first_name": "Ada",
    "company": "Acme Robotics",
    "phone": "+15550100",
    "industry": "Software",
    "sms_opt_in": True,  # texts need an explicit opt-in (docs/privacy.md)
}


@asynccontextmanager
async def worker_process(environ: dict[str, str]) -> AsyncIterator[subprocess.Popen[bytes]]:
    """``tests/journey_worker_process.py`` (the project's worker, sticky timeout 1 s) in its
    own process group, once it is ready; killed (SIGKILL) at the end if still running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.journey_worker_process"],
        cwd=REPO,
        env=environ,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
    assert line.strip() == b"ready", line
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@asynccontextmanager
async def journey_worker(
    env: WorkflowEnvironment, store: Store, settings: Settings, *extra: type[Any]
) -> AsyncIterator[Worker]:
    """The project's worker (every workflow and activity) plus ``extra`` test workflows."""
    deps = WorkerDeps(store=store, settings=settings)
    worker = Worker(
        env.client,
        task_queue=settings.task_queue,
        workflows=[*WORKFLOWS, *extra],
        activities=deps.activities(),
        activity_executor=ThreadPoolExecutor(max_workers=8),
    )
    assert deps.effects is not None
    async with contextlib.AsyncExitStack() as stack:
        for each in [
            worker,
            *send_workers(env.client, deps.effects.send_effect, worker.task_queue),
        ]:
            await stack.enter_async_context(each)
        yield worker
    if deps.http is not None:
        await deps.http.aclose()


def journey(text: str) -> JourneyDefinition:
    """A definition from YAML text (enrollment keys default to a nurture journey)."""
    data = {
        "trigger": {"event": "Test Started"},
        "category": "nurture",
        **yaml.safe_load(text),
    }
    data.setdefault("name", f"test-{uuid.uuid4().hex[:6]}")
    return parse_journey(data, "test")


def contact(store: Store, user_id: str, **traits: Any) -> str:
    """A stored contact with a profile (email, name...); returns its opaque id."""
    store.accept([track(user_id, "Identify", type_="identify", traits={**PERSON, **traits})])
    contact_id = store.resolve(user_id)
    assert contact_id is not None
    return contact_id


def ten_am() -> datetime:
    """The next 10:00 UTC at least a few seconds away (outside quiet hours)."""
    return next_local_time(datetime.now(UTC) + timedelta(seconds=5), "UTC", time(10, 0))


def facts(contact_id: str, **fields: Any) -> ContactFacts:
    """Contact facts as the contact workflow would pass them."""
    return ContactFacts(contact_id=contact_id, now=datetime.now(UTC), **fields)


async def start(
    env: WorkflowEnvironment,
    settings: Settings,
    definition: JourneyDefinition,
    contact_id: str,
    **fields: Any,
) -> WorkflowHandle[Any, Any]:
    """Start a journey at the next 10:00 UTC and move its clock there."""
    data = JourneyInput(
        contact_id=contact_id,
        enrollment_id=fields.pop("enrollment_id", f"e-{uuid.uuid4().hex[:8]}"),
        definition=definition,
        facts=fields.pop("facts", None) or facts(contact_id),
        consent=fields.pop("consent", None) or Consent(),
        not_before=ten_am(),
        **fields,
    )
    handle = await env.client.start_workflow(
        JourneyWorkflow.run,
        data,
        id=f"journey-{contact_id}-{definition.name}-{data.enrollment_id}",
        task_queue=settings.task_queue,
    )
    await skip(env, handle, data.not_before)
    return handle


async def skip(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], until: datetime | None
) -> None:
    """Move the journey's clock to ``until``."""
    assert until is not None
    now = await env.get_current_time(handle)
    if until > now:
        await env.fast_forward(handle, until - now)


async def read_signals(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait until the journey has run a workflow task after its last signal: a clock moved
    before that could fire a timer ahead of what the signal changes (a pause, say)."""

    async def settled() -> bool:
        kinds = [e.event_type async for e in handle.fetch_history_events()]
        signalled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        last = max(i for i, kind in enumerate(kinds) if kind == signalled)
        return EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in kinds[last:]

    await eventually(settled, bool)


async def progress(handle: WorkflowHandle[Any, Any]) -> JourneyProgress:
    """The journey's progress (query)."""
    return await handle.query(JourneyWorkflow.progress)


async def progress_when(
    handle: WorkflowHandle[Any, Any], check: Any, *, within: float = 45.0
) -> JourneyProgress:
    """Poll progress until ``check(progress)`` holds."""
    return await eventually(lambda: progress(handle), check, within=within)


def outcomes(state: JourneyProgress) -> list[tuple[str, str]]:
    """(step, outcome) of every step taken, in order."""
    return [(s.step, s.outcome) for s in state.steps]


def took(step: str) -> Any:
    """A check for ``progress_when``: ``step`` has a record."""
    return lambda state: any(s.step == step for s in state.steps)


async def tell(
    handle: WorkflowHandle[Any, Any],
    contact_id: str,
    *events: str | EventRecord,
    at: datetime,
    consent: Consent | None = None,
    **fields: Any,
) -> None:
    """Signal contact_changed with new events (also in the facts) at ``at``."""
    records = [e if isinstance(e, EventRecord) else EventRecord(name=e, at=at) for e in events]
    update = JourneyContactUpdate(
        facts=ContactFacts(contact_id=contact_id, now=at, events=records, **fields),
        consent=consent or Consent(),
        new_events=records,
    )
    await handle.signal(JourneyWorkflow.contact_changed, update)
