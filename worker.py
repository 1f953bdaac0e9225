"""Builds the revops worker: task queue, workflows, activities.

Workers are stateless and scale horizontally: start as many ``revops worker`` processes as the
load needs, all polling the same task queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.accounts import AccountActivities
from activities.crm_sync import CrmSync, crm_configured
from activities.effects import EffectActivities
from activities.handoff import HandoffActivities
from activities.journeys import JourneyActivities
from activities.retention import RetentionActivities
from activities.rules import RulesActivities
from activities.store import ContactActivities
from definitions import Definitions
from models.effects import PACED_CHANNELS, send_task_queue
from revops.logging import get_logger
from revops.settings import Settings
from store.repo import Store
from workflows.account import AccountWorkflow
from workflows.contact import ContactWorkflow
from workflows.handoff import HandoffWorkflow
from workflows.journey import JourneyWorkflow
from workflows.retention import RetentionWorkflow

__all__ = [
    "WORKFLOWS",
    "WorkerDeps",
    "build_worker",
    "run_worker",
    "send_workers",
    "serving",
]

log = get_logger(__name__)

WORKFLOWS: list[type[Any]] = [
    ContactWorkflow,
    HandoffWorkflow,
    JourneyWorkflow,
    RetentionWorkflow,
    AccountWorkflow,
]


@dataclass
class WorkerDeps:
    """What activities need, built once per process."""

    store: Store
    settings: Settings
    config_overrides: dict[str, Any] = field(default_factory=dict)
    http: httpx.AsyncClient | None = None
    effects: EffectActivities | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = False) -> WorkerDeps:
        """Open the store from settings.

        A worker never migrates by default: it waits up to ``schema_wait_seconds`` for
        ``revops migrate``, then raises SchemaNotReady. ``revops dev`` (the only process on a
        laptop) passes ``migrate=True``.
        """
        store = Store.open(
            settings.sqlalchemy_url,
            id_secret=settings.id_secret.get_secret_value(),
            run_migrations=migrate,
            schema_wait=settings.schema_wait_seconds,
        )
        return cls(store=store, settings=settings)

    def activities(self) -> list[Any]:
        """Every activity callable, bound to its dependencies."""
        definitions = Definitions.of(self.store, self.settings)
        contact = ContactActivities(
            self.store,
            definitions,
            self.config_overrides,
            handoff_task_queue=self.settings.priority_task_queue,
        )
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=self.settings.http_timeout_seconds)
        effects = EffectActivities(self.store, self.settings, self.http, definitions=definitions)
        self.effects = effects
        rules = RulesActivities(self.store, definitions)
        handoff = HandoffActivities(
            self.store,
            definitions,
            effects,
            slack_decisions=self.settings.slack_signing_secret is not None,
        )
        journeys = JourneyActivities(self.store, definitions)
        retention = RetentionActivities(self.store)
        accounts = AccountActivities(self.store, definitions)
        return [
            contact.load_contact_config,
            contact.record_contact_changes,
            effects.send_effect,
            rules.decide_step,
            handoff.assign_owner,
            handoff.release_owner,
            handoff.record_sla,
            handoff.send_handoff_notice,
            journeys.check_send,
            journeys.record_journey,
            retention.purge_old_events,
            accounts.tell_account,
            accounts.signal_account,
            accounts.load_accounts_config,
            accounts.record_account,
        ]


WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
)
"""The sandbox, with our workflow modules imported once per process instead of once per
workflow instance (half of a contact's start-up cost). Safe because those modules hold no
mutable state; the workflow code itself still runs under the sandbox's restrictions."""

UNSANDBOXED_RUNNER = UnsandboxedWorkflowRunner()
"""``REVOPS_WORKFLOW_SANDBOX=false``: workflow code runs as plain Python, with no per-activation
sandbox entry and no per-payload crossing (docs/performance.md has the figures). Nothing then
stops a workflow from calling the clock or I/O at run time: the replay test, which replays
every committed history in the sandbox, is what catches such code."""


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandboxed runner unless the settings turn it off."""
    return WORKFLOW_RUNNER if settings.workflow_sandbox else UNSANDBOXED_RUNNER


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
        workflow_runner=workflow_runner(deps.settings),
        # Contact steps run local activities inside their task, so a task holds its slot
        # until they finish. Few slots: the backlog waits in the server, where task priority
        # orders it (a hand-raiser goes first), not inside a worker where every task slows.
        max_concurrent_workflow_tasks=deps.settings.workflow_task_slots,
    )


def send_workers(
    client: Client,
    send_effect: Callable[..., Any],
    task_queue: str,
    rates: dict[str, float] | None = None,
) -> list[Worker]:
    """Workers for the paced channels' send queues of ``task_queue`` (only ``send_effect``).

    ``max_task_queue_activities_per_second`` is enforced by the Temporal server for the whole
    queue, so a channel's rate (``send_rates``) holds however many workers poll it; a channel
    without a rate is not limited. Sends wait in the server's queue, holding no worker slot.
    """
    workers = []
    for channel in PACED_CHANNELS:
        queue = send_task_queue(task_queue, channel)
        assert queue is not None
        workers.append(
            Worker(
                client,
                task_queue=queue,
                activities=[send_effect],
                max_task_queue_activities_per_second=(rates or {}).get(channel),
            )
        )
    return workers


@contextlib.asynccontextmanager
async def serving(client: Client, deps: WorkerDeps) -> AsyncIterator[Worker]:
    """The main queue's worker, its paced send queues' workers and, beside them, the priority
    queue's, running for the block.

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
    async with contextlib.AsyncExitStack() as stack:
        assert deps.effects is not None  # built with the worker's activities
        sends = send_workers(
            client, deps.effects.send_effect, worker.task_queue, settings.send_rates
        )
        for each in [worker, *sends]:
            await stack.enter_async_context(each)
        if priority is not None:
            await stack.enter_async_context(priority)
        if crm_configured(settings):
            await stack.enter_async_context(_crm_pusher(deps))
        yield worker


@contextlib.asynccontextmanager
async def _crm_pusher(deps: WorkerDeps) -> AsyncIterator[CrmSync]:
    """The CRM pusher beside the worker (one process at a time pushes: the ``crm`` lease)."""
    sync = CrmSync(deps.store, deps.settings)
    stop = asyncio.Event()
    task = asyncio.create_task(sync.run_forever(stop))
    try:
        yield sync
    finally:
        stop.set()
        await task


async def run_worker(client: Client, deps: WorkerDeps, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set, then shut down gracefully."""
    async with serving(client, deps):
        log.info("worker_started", task_queue=deps.settings.task_queue)
        await stop.wait()
    log.info("worker_stopped")
