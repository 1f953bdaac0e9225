"""Builds the revops worker: task queue, workflows, activities.

Workers are stateless and scale horizontally: start as many ``revops worker`` processes as the
load needs, all polling the same task queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.effects import EffectActivities
from activities.handoff import HandoffActivities
from activities.journeys import JourneyActivities
from activities.rules import RulesActivities
from activities.store import ContactActivities
from revops.logging import get_logger
from revops.settings import Settings
from store.repo import Store
from workflows.contact import ContactWorkflow
from workflows.handoff import HandoffWorkflow
from workflows.journey import JourneyWorkflow

__all__ = ["WORKFLOWS", "WorkerDeps", "build_worker", "run_worker", "serving"]

log = get_logger(__name__)

WORKFLOWS: list[type[Any]] = [ContactWorkflow, HandoffWorkflow, JourneyWorkflow]


@dataclass
class WorkerDeps:
    """What activities need, built once per process."""

    store: Store
    settings: Settings
    config_overrides: dict[str, Any] = field(default_factory=dict)
    http: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerDeps:
        """Open the store (migrating it) from settings."""
        store = Store.open(settings.sqlalchemy_url, id_secret=settings.id_secret.get_secret_value())
        return cls(store=store, settings=settings)

    def activities(self) -> list[Any]:
        """Every activity callable, bound to its dependencies."""
        contact = ContactActivities(
            self.store,
            self.settings.config_dir,
            self.config_overrides,
            handoff_task_queue=self.settings.priority_task_queue,
        )
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=self.settings.http_timeout_seconds)
        effects = EffectActivities(self.store, self.settings, self.http)
        rules = RulesActivities(self.store, self.settings.config_dir, self.settings.journeys_dir)
        handoff = HandoffActivities(self.store, self.settings.config_dir, effects)
        journeys = JourneyActivities(self.store, self.settings.config_dir)
        return [
            contact.load_contact_config,
            contact.record_stage_entries,
            contact.record_contact_changes,
            effects.send_effect,
            rules.decide_step,
            handoff.assign_owner,
            handoff.release_owner,
            handoff.record_sla,
            handoff.send_handoff_notice,
            journeys.check_send,
            journeys.record_journey,
        ]


WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
)
"""The sandbox, with our workflow modules imported once per process instead of once per
workflow instance (half of a contact's start-up cost). Safe because those modules hold no
mutable state; the workflow code itself still runs under the sandbox's restrictions."""

ACTIVITY_THREADS = 16
"""Threads for the synchronous (store) activities, local ones included."""


def build_worker(client: Client, deps: WorkerDeps, *, task_queue: str | None = None) -> Worker:
    """A worker for the main task queue."""
    return Worker(
        client,
        task_queue=task_queue or deps.settings.task_queue,
        workflows=WORKFLOWS,
        activities=deps.activities(),
        activity_executor=ThreadPoolExecutor(max_workers=ACTIVITY_THREADS),
        workflow_runner=WORKFLOW_RUNNER,
        # Contact steps run local activities inside their task, so a task holds its slot
        # until they finish. Few slots: the backlog waits in the server, where task priority
        # orders it (a hand-raiser goes first), not inside a worker where every task slows.
        max_concurrent_workflow_tasks=deps.settings.workflow_task_slots,
    )


@contextlib.asynccontextmanager
async def serving(client: Client, deps: WorkerDeps) -> AsyncIterator[Worker]:
    """The main queue's worker and, beside it, the priority queue's, running for the block.

    Handoffs (speed-to-lead) have their own queue with its own pollers and slots; a process
    whose task queue is the priority queue serves only it, and one with
    ``serve_priority_queue`` off leaves it to dedicated handoff workers (see docs/handoff.md).
    Yields the main queue's worker.
    """
    settings = deps.settings
    worker = build_worker(client, deps)
    queue = settings.priority_task_queue
    apart = queue != worker.task_queue and settings.serve_priority_queue
    priority = build_worker(client, deps, task_queue=queue) if apart else None
    async with worker, priority or contextlib.nullcontext():
        yield worker


async def run_worker(client: Client, deps: WorkerDeps, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set, then shut down gracefully."""
    async with serving(client, deps):
        log.info("worker_started", task_queue=deps.settings.task_queue)
        await stop.wait()
    log.info("worker_stopped")
