"""Helpers that drive the real stack in tests: a worker, event delivery, polling."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from contacts.contract import ContactState
from gateway.relay import Relay
from models.ingest import IncomingEvent
from revops.ids import contact_workflow_id
from revops.settings import Settings
from store.repo import Store
from worker import WorkerDeps, serving
from workflows.contact import ContactWorkflow

T = TypeVar("T")


@asynccontextmanager
async def running_worker(
    client: Client,
    store: Store,
    settings: Settings,
    *,
    children: bool = True,
    **config_overrides: Any,
) -> AsyncIterator[Relay]:
    """Run workers for ``settings.task_queue`` and the priority queue; yields a relay.

    ``children=False`` runs contacts without journeys and the sales handoff: per-workflow
    time skipping cannot move a contact while a child workflow of it waits on its own timers,
    so tests that fast-forward a contact leave the children to their own tests.
    """
    if not children:
        empty = Path(tempfile.mkdtemp(prefix="no-journeys-"))
        settings = settings.model_copy(update={"journeys_dir": empty})
        config_overrides.setdefault("auto_handoff", False)
    deps = WorkerDeps(store=store, settings=settings, config_overrides=config_overrides)
    async with serving(client, deps):
        yield Relay(store, client, settings.task_queue)


def track(
    user_id: str | None,
    name: str,
    *,
    at: datetime | None = None,
    message_id: str | None = None,
    anonymous_id: str | None = None,
    type_: str = "track",
    **fields: Any,
) -> IncomingEvent:
    """An accepted event as the gateway would build it."""
    now = datetime.now(UTC)
    return IncomingEvent(
        message_id=message_id or f"m-{uuid.uuid4()}",
        type=type_,
        name=name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        timestamp=at or now,
        received_at=now,
        **fields,
    )


async def send(store: Store, relay: Relay, *events: IncomingEvent) -> list[str]:
    """Store the events and deliver them to their contacts' workflows."""
    result = store.accept(list(events))
    for contact_id in result.contact_ids:
        await relay.drain_once(contact_id)
    return result.contact_ids


def handle_for(client: Client, store: Store, user_id: str) -> WorkflowHandle[ContactWorkflow, None]:
    """The contact workflow of ``user_id``."""
    contact_id = store.resolve(user_id)
    assert contact_id is not None, f"{user_id} is not a known contact"
    return client.get_workflow_handle_for(ContactWorkflow.run, contact_workflow_id(contact_id))


async def state_of(handle: WorkflowHandle[ContactWorkflow, Any]) -> ContactState:
    """The contact's live state (query)."""
    return await handle.query(ContactWorkflow.state)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    *,
    within: float = 45.0,
) -> T:
    """Poll ``probe`` until ``check`` holds; fail with the last value after ``within`` s.

    A passing check returns at once; the bound only decides how long a failure takes. It is
    generous because `make test` runs three test processes on two cores (CI saw 20 s missed).
    """
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {value!r}")
        await asyncio.sleep(0.1)


async def save_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """With REVOPS_CAPTURE_HISTORIES=1, keep this run's history for the replay test."""
    if os.environ.get("REVOPS_CAPTURE_HISTORIES") != "1":
        return
    completed = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    for _ in range(50):  # a run that just began (after continue-as-new) has nothing to replay
        history = await handle.fetch_history()
        if any(e.event_type == completed for e in history.events):
            break
        await asyncio.sleep(0.1)
    target = Path(__file__).parent / "histories" / f"{name}.json"
    target.write_text(history.to_json(), encoding="utf-8")


ICP_TRAITS: dict[str, Any] = {
    "company_size": 450,
    "industry": "Software",
    "title": "VP Engineering",
    "country": "US",
    "email": "buyer@acme-robotics.com",
}
"""A contact that matches the ideal customer profile (fit 65 under the default model)."""


async def virtual_now(env: Any, handle: WorkflowHandle[Any, Any]) -> datetime:
    """The workflow's clock (time-skipping moves it ahead of the wall clock)."""
    moment: datetime = await env.get_current_time(handle)
    return moment


def applied(count: int) -> Callable[[ContactState], bool]:
    """A check for ``eventually``: the contact has applied ``count`` events."""
    return lambda state: state.events_applied == count


def quick_accounts(settings: Settings, folder: Path) -> Settings:
    """Settings on a copy of the shipped definitions whose accounts tell their members at once
    (``broadcast_seconds: 0``), so a test sees an account's change without waiting."""
    target = folder / "config"
    shutil.copytree(settings.config_dir, target)
    path = target / "accounts.yaml"
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    body["broadcast_seconds"] = 0
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return settings.model_copy(update={"config_dir": target})
