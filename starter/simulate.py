"""Time-travel simulation of one journey: weeks of journey in seconds, nothing really sent.

``simulate`` starts a Temporal dev server with per-workflow time skipping in this process, a
throw-away SQLite store holding one synthetic contact, and a worker running the real
``JourneyWorkflow`` with the real activities: the send-time rules check and the one send path
(``send_effect``, so templates render and the ledger works as in production), except that
email goes to a recorder and HTTP (webhook, Slack, SMS provider) to a recording transport.

A timeline (YAML) scripts what the contact does: at each offset from the journey's start the
simulation fast-forwards the workflow's clock and signals ``contact_changed`` with the new
facts and event, exactly as the contact workflow would. After the last entry it lets the
journey run to its end with unbounded time skipping. The journey starts at the next
``start_at`` local time (10:00 by default) so quiet hours do not blur the day numbers.

Timeline format::

    contact:                      # optional: the synthetic contact
      traits: {industry: Software, first_name: Sam}
      scores: {engagement: 10}
      stage: Lead
      lists: [Engaged Last 30 Days]
      demand_state: solution-aware
      time_zone: Europe/Berlin
    trigger_properties: {starts_at: start+10d}   # of the enrolling event; start+D is
                                                 # D after the simulated start, as ISO
    events:
      - at: 1d                    # offset from the start: 30m, 12h, 3d, 2w or seconds
        event: Email Clicked
        properties: {step: d0-confirmation}
      - at: 4d
        scores: {engagement: 55}  # facts can change without an event too
        stage: MQL
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import httpx
from pydantic import BaseModel, BeforeValidator, Field, SecretStr, ValidationError
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment
from temporalio.worker import Worker

from activities.effects import EffectActivities, render
from activities.journeys import JourneyActivities
from audience.conditions import config_error
from audience.consent import Consent
from audience.facts import ContactFacts, EventRecord
from definitions import Definitions
from journeys.contract import (
    JourneyContactUpdate,
    JourneyInput,
    JourneyProgress,
    journey_workflow_id,
)
from journeys.definition import JourneyDefinition
from journeys.enrollment import EventTrigger
from journeys.program import journey_summary, next_local_time
from models.ingest import IncomingEvent
from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from revops.durations import parse_duration
from revops.settings import Settings
from revops.strict import StrictModel
from revops.temporal import DATA_CONVERTER
from revops.yamlio import read_yaml
from starter.devserver import find_temporal_cli
from store.repo import Store, public_traits
from workflows.journey import JourneyWorkflow

__all__ = [
    "SERVER_ARGS",
    "SimulatedStep",
    "Simulation",
    "SimulationResult",
    "Timeline",
    "TimelineEntry",
    "load_timeline",
    "simulate",
    "simulation_environment",
]

_USER_ID = "simulated-contact"
_DEFAULT_TRAITS: dict[str, Any] = {
    "email": "sam.sample@example.com",
    "first_name": "Sam",
    "company": "Example Co",
    "industry": "Software",
    "title": "Head of Operations",
    "phone": "+15550100",
    "sms_opt_in": True,  # SMS needs an explicit opt-in (docs/privacy.md); a timeline may say no
}
_FINISH_TIMEOUT = 120.0
_ID_KEY = "simulation-only-id-key"
"""Keys the throw-away store's contact ids; nothing simulated leaves the process."""


def _offset(value: Any) -> Any:
    """``0`` (the start), seconds, or a duration like ``3d``."""
    if value in (0, "0"):
        return timedelta(0)
    return parse_duration(value)


class SimulatedContact(StrictModel):
    """The synthetic contact: profile traits (personal ones stay in the throw-away store)."""

    traits: dict[str, Any] = Field(default_factory=dict)
    scores: dict[str, float] = Field(default_factory=dict)
    stage: str = "Lead"
    lists: list[str] = Field(default_factory=list)
    demand_state: str | None = None
    time_zone: str = "UTC"
    consent: Consent = Field(default_factory=Consent)


class TimelineEntry(StrictModel):
    """What happens at ``at`` after the journey's start: an event, changed facts, or both."""

    at: Annotated[timedelta, BeforeValidator(_offset)]
    event: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    scores: dict[str, float] = Field(default_factory=dict)
    stage: str | None = None
    demand_state: str | None = None
    lists_add: list[str] = Field(default_factory=list)
    lists_remove: list[str] = Field(default_factory=list)
    unsubscribe: bool = False


class Timeline(StrictModel):
    """A scripted contact and what it does, in simulated time.

    ``trigger_properties`` are the properties of the event that enrolled the contact (for an
    event-triggered journey it is in the facts at the start, e.g. a webinar's ``starts_at``).
    """

    contact: SimulatedContact = Field(default_factory=SimulatedContact)
    trigger_properties: dict[str, Any] = Field(default_factory=dict)
    events: list[TimelineEntry] = Field(default_factory=list)


def load_timeline(path: Path) -> Timeline:
    """Read a timeline file; ConfigError names the file and the field."""
    data = read_yaml(path) or {}
    try:
        return Timeline.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, str(path)) from exc


class SimulatedStep(BaseModel):
    """One line of the simulated timeline."""

    at: datetime
    day: float
    step: str
    number: int
    kind: str
    outcome: str
    detail: str = ""
    subject: str | None = None
    variant: str | None = None


class SimulationResult(BaseModel):
    """The whole run: every step with its simulated time, what went out, how it ended."""

    journey: str
    version: int
    started_at: datetime
    outcome: str
    steps: list[SimulatedStep]
    emails: list[str] = Field(default_factory=list)
    http_posts: list[str] = Field(default_factory=list)
    elapsed_seconds: float = 0.0


@contextmanager
def _server_output_silenced() -> Iterator[None]:
    """The dev server inherits our stdout when spawned; give it /dev/null instead.

    Its start-up banner would otherwise end up in ``--json`` output. Only the spawn needs the
    redirection: the child keeps the descriptor it was born with.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


SERVER_ARGS = [
    "--dynamic-config-value",
    "frontend.WorkflowTimeSkippingEnabled=true",
    # Fire due timers at once instead of up to a second late: each skipped wait then takes
    # milliseconds, so a 20-day journey simulates in about a second.
    "--dynamic-config-value",
    'history.timerProcessorMaxTimeShift="10ms"',
]
"""Dev server flags for simulations (and tests of many timers)."""


@asynccontextmanager
async def simulation_environment() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server with per-workflow time skipping, started in this process."""
    with _server_output_silenced():
        environment = await WorkflowEnvironment.start_time_skipping_v2(
            ts_config=TimeSkippingConfig(enabled=False),
            dev_server_existing_path=find_temporal_cli(),
            dev_server_extra_args=SERVER_ARGS,
            dev_server_log_level="error",
            data_converter=DATA_CONVERTER,
            search_attributes=ALL_SEARCH_ATTRIBUTES,
        )
    try:
        yield environment
    finally:
        await environment.shutdown()


class Simulation:
    """One journey run for one synthetic contact; see the module docstring."""

    def __init__(
        self, env: WorkflowEnvironment, definition: JourneyDefinition, timeline: Timeline
    ) -> None:
        self._env = env
        self._definition = definition
        self._timeline = timeline
        self._emails: list[EmailMessage] = []
        self._posts: list[str] = []
        self._events: list[EventRecord] = []
        contact = timeline.contact
        self._traits = {**_DEFAULT_TRAITS, **contact.traits}
        self._scores = dict(contact.scores)
        self._stage = contact.stage
        self._lists = set(contact.lists)
        self._demand_state = contact.demand_state
        self._consent = contact.consent.model_copy()
        self._origin = datetime.now(UTC)

    async def run(self, config_dir: Path, start_at: time) -> SimulationResult:
        """Run the journey to its end; returns the timeline of steps."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        with tempfile.TemporaryDirectory(prefix="revops-sim-") as tmp:
            settings = _settings(Path(tmp), config_dir)
            store = Store.open(settings.sqlalchemy_url, id_secret=_ID_KEY)
            try:
                result = await self._run_in(store, settings, start_at)
            finally:
                store.engine.dispose()
        result.elapsed_seconds = round(loop.time() - began, 2)
        return result

    async def _run_in(self, store: Store, settings: Settings, start_at: time) -> SimulationResult:
        contact_id = self._create_contact(store)
        transport = httpx.MockTransport(self._record_post)
        async with httpx.AsyncClient(transport=transport) as http:
            effects = EffectActivities(store, settings, http, mailer=self._record_email)
            journeys = JourneyActivities(store, Definitions.of(store, settings))
            worker = Worker(
                self._env.client,
                task_queue=settings.task_queue,
                workflows=[JourneyWorkflow],
                activities=[effects.send_effect, journeys.check_send, journeys.record_journey],
                activity_executor=ThreadPoolExecutor(max_workers=4),
            )
            from worker import send_workers  # the worker module imports every workflow

            sends = send_workers(self._env.client, effects.send_effect, settings.task_queue)
            async with contextlib.AsyncExitStack() as stack:
                for each in [worker, *sends]:
                    await stack.enter_async_context(each)
                return await self._drive(contact_id, settings, start_at)

    def _create_contact(self, store: Store) -> str:
        now = datetime.now(UTC)
        identify = IncomingEvent(
            message_id=f"sim-{uuid.uuid4()}",
            type="identify",
            name="Identify",
            user_id=_USER_ID,
            traits=self._traits,
            timestamp=now,
            received_at=now,
        )
        store.accept([identify])
        contact_id = store.resolve(_USER_ID)
        assert contact_id is not None
        return contact_id

    def _facts(self, contact_id: str, now: datetime) -> ContactFacts:
        return ContactFacts(
            contact_id=contact_id,
            now=now,
            traits=public_traits(self._traits),
            scores=self._scores,
            stage=self._stage,
            lists=frozenset(self._lists),
            demand_state=self._demand_state,
            events=list(self._events),
        )

    async def _drive(self, contact_id: str, settings: Settings, start_at: time) -> SimulationResult:
        zone = self._timeline.contact.time_zone
        start = next_local_time(datetime.now(UTC) + timedelta(seconds=5), zone, start_at)
        trigger = self._definition.trigger
        if isinstance(trigger, EventTrigger):
            properties = {**trigger.properties, **self._timeline.trigger_properties}
            self._events.append(
                EventRecord(name=trigger.event, at=start, properties=_relative(properties, start))
            )
        self._origin = start
        handle = await self._start(contact_id, settings, start, zone)
        for entry in sorted(self._timeline.events, key=lambda e: e.at):
            await self._advance_to(handle, start + entry.at)
            await self._apply(handle, contact_id, entry, start + entry.at)
        try:
            await asyncio.wait_for(self._env.fast_forward(handle, None), _FINISH_TIMEOUT)
        except RPCError as exc:  # the last event ended the journey (a goal, an exit) already
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        await handle.result()
        progress = await handle.query(JourneyWorkflow.progress)
        return self._result(progress, start)

    async def _start(
        self, contact_id: str, settings: Settings, start: datetime, zone: str
    ) -> WorkflowHandle[Any, Any]:
        definition = self._definition
        data = JourneyInput(
            contact_id=contact_id,
            enrollment_id=f"sim-{uuid.uuid4().hex[:8]}",
            definition=definition,
            facts=self._facts(contact_id, start),
            consent=self._consent,
            time_zone=zone,
            not_before=start,
        )
        client: Client = self._env.client
        return await client.start_workflow(
            JourneyWorkflow.run,
            data,
            id=journey_workflow_id(contact_id, definition.name, 1) + f"-{data.enrollment_id}",
            task_queue=settings.task_queue,
            static_summary="simulated " + journey_summary(definition),
        )

    async def _advance_to(self, handle: WorkflowHandle[Any, Any], moment: datetime) -> None:
        now = await self._env.get_current_time(handle)
        if moment > now:
            await asyncio.wait_for(self._env.fast_forward(handle, moment - now), _FINISH_TIMEOUT)

    async def _apply(
        self, handle: WorkflowHandle[Any, Any], contact_id: str, entry: TimelineEntry, at: datetime
    ) -> None:
        self._traits.update(entry.traits)
        self._scores.update(entry.scores)
        self._stage = entry.stage or self._stage
        self._demand_state = entry.demand_state or self._demand_state
        self._lists = (self._lists | set(entry.lists_add)) - set(entry.lists_remove)
        if entry.unsubscribe:
            self._consent = self._consent.model_copy(
                update={"subscribed": False, "unsubscribed_at": at}
            )
        new = []
        if entry.event:
            properties = _relative(entry.properties, self._origin)
            new.append(EventRecord(name=entry.event, at=at, properties=properties))
            self._events.extend(new)
        update = JourneyContactUpdate(
            facts=self._facts(contact_id, at), consent=self._consent, new_events=new
        )
        await handle.signal(JourneyWorkflow.contact_changed, update)

    async def _record_email(self, message: EmailMessage) -> None:
        self._emails.append(message)

    def _record_post(self, request: httpx.Request) -> httpx.Response:
        self._posts.append(str(request.url))
        return httpx.Response(200, text="ok")

    def _result(self, progress: JourneyProgress, start: datetime) -> SimulationResult:
        steps = [
            SimulatedStep(
                at=record.at,
                day=round((record.at - start).total_seconds() / 86_400, 3),
                **record.model_dump(exclude={"at"}),
            )
            for record in progress.steps
        ]
        for step in steps:  # progress keeps the template; the synthetic contact is no secret
            if step.subject and step.outcome == "sent":
                step.subject = render(step.subject, {"contact": self._traits})
        return SimulationResult(
            journey=progress.journey,
            version=progress.version,
            started_at=start,
            outcome=progress.outcome or "unfinished",
            steps=steps,
            emails=[str(m["Subject"]) for m in self._emails],
            http_posts=self._posts,
        )


def _relative(properties: dict[str, Any], start: datetime) -> dict[str, Any]:
    """``start+10d`` in a property becomes the ISO time ten days after the simulated start."""
    resolved = dict(properties)
    for key, value in properties.items():
        if isinstance(value, str) and value.startswith("start+"):
            resolved[key] = (start + parse_duration(value.removeprefix("start+"))).isoformat()
    return resolved


def _settings(tmp: Path, config_dir: Path) -> Settings:
    """Settings for the throw-away world: its own store, queue, and recorded outbound HTTP."""
    return Settings(
        data_dir=tmp,
        database_url=f"sqlite:///{tmp / 'simulation.db'}",
        task_queue=f"simulate-{uuid.uuid4().hex[:8]}",
        id_secret=SecretStr(_ID_KEY),
        config_dir=config_dir,
        slack_webhook_url="https://hooks.slack.example/simulated",
        sms_provider="webhook",
        sms_webhook_url="https://sms.example/simulated",
        crm_webhook_url=None,
        public_url="https://revops.example",
    )


async def simulate(
    definition: JourneyDefinition,
    timeline: Timeline | None = None,
    *,
    config_dir: Path,
    start_at: time = time(10, 0),
    env: WorkflowEnvironment | None = None,
) -> SimulationResult:
    """Simulate ``definition`` for a synthetic contact; starts a dev server unless given one."""
    ZoneInfo((timeline or Timeline()).contact.time_zone)  # an unknown zone fails here, early
    if env is not None:
        return await Simulation(env, definition, timeline or Timeline()).run(config_dir, start_at)
    async with simulation_environment() as own:
        return await Simulation(own, definition, timeline or Timeline()).run(config_dir, start_at)
