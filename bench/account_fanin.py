"""Cost of accounts: the fan-in per event against the contact step, and a 500-member account.

(Named ``account_fanin.py``: a script named ``accounts.py`` would hide the ``accounts`` package.)

(1) In-process CPU per event, best of several rounds over a 200-event timeline: the contact
    step's pure work (``apply_events`` + ``derive`` on the shipped definitions) against the
    fan-in's (the contact's ``member_updates`` plus the account's ``apply_updates``,
    ``account_facts``, ``play_step`` and ``broadcast_step`` for an account of 20 members).
(2) End to end on a Temporal dev server (SQLite file, as ``revops dev`` runs it) with an
    in-process worker (no journeys, no handoffs): ``--contacts`` contacts each get
    ``--events`` page views through the store and the relay (then, the worst case, a
    behaviour of a new name each time, which every step must tell the account), once as
    free-mail contacts (no account, the baseline) and once as colleagues of one company
    (their account's workflow fed by every step and telling them back), alternating, best of
    three each. The fan-in's cost per event is the CPU this process (worker, relay, store)
    and the Temporal server spend, with an account against without: the member's signal,
    the account's tasks, the members' steps when it tells them back. Goal: under 20% of the
    contact step. Workflow task time (from the histories; on a busy machine it includes
    waiting for the worker's event loop) and wall time are printed too.
(3) One account of ``--members`` (500) members: every member joins and engages, then an
    executive engages; it prints how long the joins took, the account's history length and
    runs (continue-as-new), when the account told its members (at most ``broadcast_seconds``
    after the previous broadcast) and how long until the last member entered the list
    "Executive-Engaged Accounts" (from the store's list history: every member re-evaluated).

Run: ``.venv/bin/python bench/account_fanin.py`` (about three minutes on two cores), or smaller:
``--contacts 10 --events 5 --members 100``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import os
import shutil
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from accounts.contract import AccountState
from accounts.membership import member_updates
from accounts.state import account_facts, apply_updates, broadcast_step, play_step
from audience.accounts import account_id_for, account_workflow_id
from contacts.contract import ContactState
from contacts.state import apply_events, derive
from definitions import ACCOUNTS, Definitions
from gateway.relay import Relay
from models.events import ContactEvent
from models.ingest import IncomingEvent
from revops.ids import contact_workflow_id
from revops.logging import configure_logging
from revops.settings import Settings
from revops.temporal import DATA_CONVERTER
from starter.devserver import DevServer
from store.history import ListMembershipRow
from store.registry import Registry
from store.repo import Store
from worker import WorkerDeps, serving
from workflows.account import AccountWorkflow
from workflows.contact import ContactWorkflow

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PAGES = ("Pricing Page Viewed", "Integrations Page Viewed", "Case Study Viewed", "Home Page Viewed")
ROUNDS = 5
DAILY: dict[str, bool] = (
    {"daily": True} if "daily" in inspect.signature(member_updates).parameters else {}
)
LEAN: dict[str, bool] = (
    {"lean": True} if "lean" in inspect.signature(broadcast_step).parameters else {}
)
"""The fan-in patches' behaviour in (1) (this bench also measures the code before them)."""


# ---- (1) CPU per event ------------------------------------------------------------------------


def _event(i: int, at: datetime) -> ContactEvent:
    return ContactEvent(
        message_id=f"m-{i}", name=PAGES[i % len(PAGES)], timestamp=at, received_at=at, kind="page"
    )


def cpu_per_event(store: Store) -> tuple[float, float]:
    """Microseconds per event: the contact step's pure work, and the fan-in's."""
    definitions = Definitions(Registry(store), REPO / "config", REPO / "config" / "journeys")
    config = definitions.contact_bundle()
    accounts = definitions.get(ACCOUNTS)
    traits = {"email_domain": "initech.example", "title": "VP Engineering", "company_size": 450}
    events = [_event(i, T0 + timedelta(hours=6 * i)) for i in range(200)]
    step_best = fan_best = float("inf")
    for _ in range(ROUNDS):
        state = ContactState(contact_id="c-bench", created_at=T0, traits=dict(traits))
        account = AccountState(account_id="a1", key="domain:initech.example", created_at=T0)
        others = [
            ContactState(contact_id=f"c{i}", created_at=T0, traits=dict(traits)) for i in range(19)
        ]
        for other in others:
            apply_updates(account, member_updates(other, [events[0]], accounts, T0))
        step = fan = 0.0
        for event in events:
            now = event.timestamp
            started = time.perf_counter()
            changes = apply_events(state, [event], config, now)
            derive(state, config, now, changes, event.name)
            middle = time.perf_counter()
            updates = member_updates(state, changes.applied_events, accounts, now, **DAILY)
            apply_updates(account, updates)
            facts = account_facts(account, accounts, now)
            play_step(account, facts, accounts, now)
            broadcast_step(account, facts, accounts, now, **LEAN)
            ended = time.perf_counter()
            step += middle - started
            fan += ended - middle
        step_best = min(step_best, step / len(events) * 1e6)
        fan_best = min(fan_best, fan / len(events) * 1e6)
    return step_best, fan_best


# ---- (2) and (3) through Temporal ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


EXECUTIVE_LIST = "Executive-Engaged Accounts"
"""The list members enter when an executive of their account engages (config/lists.yaml)."""


def _entered(store: Store, contact_ids: list[str], list_name: str) -> list[datetime]:
    """When each of ``contact_ids`` entered ``list_name`` (the store's list history)."""
    with store._sessions() as session:
        query = select(ListMembershipRow.entered_at).where(
            ListMembershipRow.list_name == list_name,
            ListMembershipRow.contact_id.in_(contact_ids),
        )
        return [at if at.tzinfo else at.replace(tzinfo=UTC) for at in session.scalars(query)]


def _incoming(
    user: str, name: str, traits: dict[str, Any] | None = None, at: datetime | None = None
) -> IncomingEvent:
    now = datetime.now(UTC)
    return IncomingEvent(
        message_id=f"b-{uuid.uuid4()}",
        type="page" if name.endswith("Viewed") else "identify",
        name=name,
        user_id=user,
        traits=traits or {},
        timestamp=at or now,
        received_at=now,
    )


MIXES = {
    "burst": "page views, one session (4 pages repeating, the same day)",
    "sessions": "realistic mix (sessions of 3 page views over 4 days)",
    "news": "every event news (a new behaviour on a new day each)",
}
"""The traffic of (2): what the account hears depends on it, the contacts' work hardly."""


def _timeline(mix: str, events: int, now: datetime) -> list[tuple[str, datetime]]:
    """Name and time of each of a contact's ``events`` (all in the past, oldest first)."""
    if mix == "burst":
        return [(PAGES[n % len(PAGES)], now) for n in range(events)]
    if mix == "sessions":
        days = -(-events // 3)
        return [
            (PAGES[n % len(PAGES)], now - timedelta(days=days - 1 - n // 3, minutes=3 - n % 3))
            for n in range(events)
        ]
    return [(f"Docs {n} Page Viewed", now - timedelta(days=events - 1 - n)) for n in range(events)]


async def _until(probe: Callable[[], Any], patience: float = 600.0, every: float = 0.05) -> float:
    """Poll ``probe`` (an async check) until it holds; returns when (perf_counter)."""
    deadline = time.perf_counter() + patience
    while not await probe():
        if time.perf_counter() > deadline:
            raise SystemExit("timed out waiting for the workflows")
        await asyncio.sleep(every)
    return time.perf_counter()


POLL = 0.5
"""How often (2) checks whether the workflows are done: its queries cost CPU, counted too."""


async def _applied(client: Client, store: Store, users: list[str], count: int) -> bool:
    for user in users:
        contact_id = store.resolve(user)
        handle: WorkflowHandle[ContactWorkflow, None] = client.get_workflow_handle_for(
            ContactWorkflow.run, contact_workflow_id(contact_id or "")
        )
        try:
            state = await handle.query(ContactWorkflow.state)
        except RPCError:
            return False
        if state.events_applied < count:
            return False
    return True


async def _deliver(store: Store, relay: Relay, events: list[IncomingEvent]) -> None:
    result = store.accept(events)
    await asyncio.gather(*(relay.drain_once(c) for c in result.contact_ids))


class Tasks:
    """What a workflow's history shows: its tasks' time, and the account signals it made
    (``told``: signal commands) or received (``heard``: account_changed, ``updates``:
    member_update)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.told = 0
        self.heard = 0
        self.updates = 0

    def negated(self) -> Tasks:
        """The opposite counts (to take what came before a run off)."""
        found = Tasks()
        found.add(self)
        found.seconds, found.told, found.heard = -found.seconds, -found.told, -found.heard
        found.updates = -found.updates
        return found

    def add(self, other: Tasks) -> Tasks:
        self.seconds += other.seconds
        self.told += other.told
        self.heard += other.heard
        self.updates += other.updates
        return self


async def _tasks(client: Client, workflow_id: str) -> Tasks:
    """Time the workflow's tasks took (started to completed, local activities included): what
    a step costs a worker, whatever else the machine is doing between tasks; and its account
    signals."""
    started: dict[int, datetime] = {}
    found = Tasks()
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            started[event.event_id] = event.event_time.ToDatetime(UTC)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            began = started.get(event.workflow_task_completed_event_attributes.started_event_id)
            if began is not None:
                found.seconds += (event.event_time.ToDatetime(UTC) - began).total_seconds()
        elif kind == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
            found.told += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            name = event.workflow_execution_signaled_event_attributes.signal_name
            found.heard += name == "account_changed"
            found.updates += name == "member_update"
    return found


def _server_cpu(pid: int) -> float:
    """CPU seconds the Temporal server process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _quiet(client: Client, workflow_ids: list[str], account: str | None) -> bool:
    """No workflow task pending anywhere, and the account holds back no broadcast."""
    if account is not None:
        handle: WorkflowHandle[AccountWorkflow, None] = client.get_workflow_handle_for(
            AccountWorkflow.run, account
        )
        state = await handle.query(AccountWorkflow.state)
        if state.broadcast_due is not None:  # sleep until it is due, without polling
            wait = (state.broadcast_due - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(max(wait, 0.0) + 0.5)
            return False
    for workflow_id in workflow_ids:
        described = await client.get_workflow_handle(workflow_id).describe()
        if described.raw_description.HasField("pending_workflow_task"):
            return False
    await asyncio.sleep(0.5)
    return True


async def _idle_cpu(server_pid: int, seconds: float = 3.0) -> float:
    """CPU seconds per second this process and the server spend doing nothing."""
    cpu = time.process_time() + (_server_cpu(server_pid) if server_pid else 0.0)
    await asyncio.sleep(seconds)
    return (time.process_time() + (_server_cpu(server_pid) if server_pid else 0.0) - cpu) / seconds


class Run:
    """Per event of one run of (2): wall ms, the contacts' and the account's workflow task ms,
    CPU ms (this process and the Temporal server), member updates and account_changed
    signals."""

    def __init__(self, wall: float, contact: Tasks, account: Tasks, cpu: float, count: int) -> None:
        self.wall = wall / count * 1000
        self.contact_ms = contact.seconds / count * 1000
        self.account_ms = account.seconds / count * 1000
        self.cpu = cpu / count * 1000
        self.updates = account.updates / count
        self.heard = contact.heard / count


async def per_event(
    client: Client,
    store: Store,
    relay: Relay,
    contacts: int,
    events: int,
    company: bool,
    mix: str,
    server_pid: int = 0,
    idle: float = 0.0,
) -> Run:
    """One run of ``contacts`` contacts with ``events`` each in ``mix`` (``MIXES``), as
    colleagues (``company``) or free-mail contacts; figures per event (``Run``). It ends when
    every workflow is quiet (a held-back broadcast included); ``idle`` CPU seconds per second
    (pollers, the server's timers) are taken off for that time, so waiting costs nothing."""
    tag = uuid.uuid4().hex[:6]
    domain = f"co-{tag}.example" if company else "gmail.com"
    users = [f"u-{tag}-{i}" for i in range(contacts)]
    now = datetime.now(UTC)
    timeline = _timeline(mix, events, now)
    joined = timeline[0][1] - timedelta(minutes=5)
    identify = [
        _incoming(u, "Identify", {"email": f"p{i}@{domain}", "title": "Engineer"}, joined)
        for i, u in enumerate(users)
    ]
    await _deliver(store, relay, identify)
    await _until(lambda: _applied(client, store, users, 1))
    ids = [contact_workflow_id(store.resolve(u) or "") for u in users]
    account_wf = account_workflow_id(account_id_for(f"domain:{domain}")) if company else None
    everyone = [*ids, *([account_wf] if account_wf else [])]
    await _until(lambda: _quiet(client, everyone, account_wf))  # joined, and told so
    before = await _tasks(client, account_wf) if account_wf else Tasks()
    before_contacts = Tasks()
    for found in await asyncio.gather(*(_tasks(client, w) for w in ids)):
        before_contacts.add(found)
    started = time.perf_counter()
    cpu = time.process_time() + (_server_cpu(server_pid) if server_pid else 0.0)
    for name, at in timeline:
        await _deliver(store, relay, [_incoming(u, name, at=at) for u in users])
    done = await _until(lambda: _applied(client, store, users, 1 + events), every=POLL)
    await _until(lambda: _quiet(client, everyone, account_wf), every=POLL)
    settled = time.perf_counter()
    cpu = time.process_time() + (_server_cpu(server_pid) if server_pid else 0.0) - cpu
    cpu -= idle * (settled - started)
    account = await _tasks(client, account_wf) if account_wf else Tasks()
    account.add(before.negated())
    contact = Tasks()
    for found in await asyncio.gather(*(_tasks(client, w) for w in ids)):
        contact.add(found)
    contact.add(before_contacts.negated())
    return Run(done - started, contact, account, cpu, contacts * events)


async def _compare(
    client: Client, store: Store, relay: Relay, n: int, k: int, mix: str, pid: int, runs: int
) -> None:
    """``runs`` pairs, free-mail then colleagues, each pair measured back to back: the ratio of
    a pair is the fan-in's cost in that moment of the shared machine."""
    ratios: list[float] = []
    for i in range(runs):
        idle = await _idle_cpu(pid)
        alone = await per_event(client, store, relay, n, k, False, mix, pid, idle)
        company = await per_event(client, store, relay, n, k, True, mix, pid, idle)
        ratios.append(company.cpu / alone.cpu - 1)
        print(
            f"  {mix} run {i + 1}: CPU per event {alone.cpu:.1f} ms alone, {company.cpu:.1f} ms "
            f"with an account ({ratios[-1]:+.0%}); task time {alone.contact_ms:.1f} / "
            f"{company.contact_ms:.1f} ms + {company.account_ms:.1f} ms the account's; wall "
            f"{alone.wall:.1f} / {company.wall:.1f} ms; per event {company.updates:.2f} member "
            f"updates, {company.heard:.2f} account_changed signals; idle {idle * 1000:.0f} "
            f"ms/s"
        )
    ordered = sorted(ratios)
    print(
        f"end to end, {n} contacts x {k} events, {MIXES[mix]}: account fan-in CPU per event "
        f"median {statistics.median(ratios):+.0%} (runs {', '.join(f'{r:+.0%}' for r in ordered)}"
        f"; goal < 20%)"
    )


async def big_account(client: Client, store: Store, relay: Relay, members: int) -> dict[str, Any]:
    """Join ``members`` colleagues who each engage, then an executive: the figures of (3)."""
    tag = uuid.uuid4().hex[:6]
    domain = f"big-{tag}.example"
    users = [f"m-{tag}-{i}" for i in range(members)]
    started = time.perf_counter()
    for chunk in range(0, members, 50):
        part = users[chunk : chunk + 50]
        await _deliver(
            store,
            relay,
            [
                e
                for i, u in enumerate(part)
                for e in (
                    _incoming(u, "Identify", {"email": f"p{i}@{domain}", "title": "Engineer"}),
                    _incoming(u, "Pricing Page Viewed"),
                )
            ],
        )
    account: WorkflowHandle[AccountWorkflow, None] = client.get_workflow_handle_for(
        AccountWorkflow.run, account_workflow_id(account_id_for(f"domain:{domain}"))
    )

    async def all_joined() -> bool:
        try:
            state = await account.query(AccountWorkflow.state)
        except RPCError:
            return False
        return len(state.members) == members and all(
            r.last_engaged_at is not None for r in state.members.values()
        )

    joined = await _until(all_joined) - started
    description = await account.describe()
    state = await account.query(AccountWorkflow.state)
    boss = f"m-{tag}-ceo"
    exec_at = datetime.now(UTC)
    await _deliver(
        store,
        relay,
        [
            _incoming(boss, "Identify", {"email": f"ceo@{domain}", "title": "CEO"}),
            _incoming(boss, "Pricing Page Viewed"),
        ],
    )

    async def broadcast() -> bool:
        told = await account.query(AccountWorkflow.state)
        return told.priority == "high" and (told.broadcast_at or exec_at) > exec_at

    await _until(broadcast)
    told = await account.query(AccountWorkflow.state)
    assert told.broadcast_at is not None
    member_ids = [store.resolve(u) or "" for u in users]

    async def everyone_entered() -> bool:
        await asyncio.sleep(0.5)
        return len(_entered(store, member_ids, EXECUTIVE_LIST)) == len(member_ids)

    await _until(everyone_entered)
    done = max(_entered(store, member_ids, EXECUTIVE_LIST))
    return {
        "joined_s": joined,
        "history": description.raw_description.workflow_execution_info.history_length,
        "runs": state.runs,
        "held_s": (told.broadcast_at - exec_at).total_seconds(),
        "fanout_s": (done - told.broadcast_at).total_seconds(),
    }


def _config(folder: Path, broadcast_seconds: int) -> Path:
    """The shipped definitions, with accounts telling their members at most every
    ``broadcast_seconds`` (shorter than the shipped 30 s: a run's burst lasts seconds, and the
    bench must not wait half a minute for each held-back broadcast; more broadcasts than in
    production, so the figure errs on the expensive side)."""
    target = folder / "config"
    shutil.copytree(REPO / "config", target)
    path = target / "accounts.yaml"
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    body["broadcast_seconds"] = broadcast_seconds
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return target


async def through_temporal(args: argparse.Namespace, folder: Path) -> None:
    server = DevServer(folder / "temporal.db", port=_free_port(), ui_port=None)
    await server.astart()
    try:
        client = None
        for _ in range(100):
            with contextlib.suppress(RuntimeError):
                client = await Client.connect(server.address, data_converter=DATA_CONVERTER)
                break
            await asyncio.sleep(0.2)
        assert client is not None
        store = Store.open(f"sqlite:///{folder / 'store.db'}", id_secret="bench-secret")
        journeys = folder / "no-journeys"
        journeys.mkdir()
        settings = Settings(
            data_dir=folder,
            task_queue=f"bench-{uuid.uuid4().hex[:6]}",
            id_secret=SecretStr("bench-secret"),
            config_dir=_config(folder, args.broadcast_seconds),
            journeys_dir=journeys,
        )
        deps = WorkerDeps(store=store, settings=settings, config_overrides={"auto_handoff": False})
        async with serving(client, deps):
            relay = Relay(store, client, settings.task_queue)
            n, k = args.contacts, args.events
            pid = server._process.pid if server._process else 0  # the server's CPU
            for mix in args.mix:
                await _compare(client, store, relay, n, k, mix, pid, args.runs)
            if args.members > 0:
                big = await big_account(client, store, relay, args.members)
                print(
                    f"{args.members}-member account: joined and engaged in "
                    f"{big['joined_s']:.1f} s, "
                    f"history {big['history']} events in run {big['runs']}; an executive's "
                    f"engagement broadcast {big['held_s']:.1f} s later (broadcast_seconds), the "
                    f"last member entered {EXECUTIVE_LIST!r} {big['fanout_s']:.1f} s after that"
                )
        store.engine.dispose()
    finally:
        await server.astop()


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--members", type=int, default=500, help="0: no big account")
    parser.add_argument("--runs", type=int, default=3, help="pairs per mix")
    parser.add_argument("--broadcast-seconds", type=int, default=5)
    parser.add_argument("--mix", nargs="+", choices=sorted(MIXES), default=list(MIXES))
    parser.add_argument("--cpu-only", action="store_true", help="only part (1)")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    configure_logging(level="WARNING")
    with tempfile.TemporaryDirectory(prefix="bench-accounts-") as tmp:
        folder = Path(tmp)
        store = Store.open(f"sqlite:///{folder / 'cpu.db'}", id_secret="bench-secret")
        step, fan = cpu_per_event(store)
        store.engine.dispose()
        print(
            f"in-process CPU per event: contact step {step:.0f} us, account fan-in {fan:.0f} us "
            f"(+{fan / step:.0%} of the step; goal < 20%)"
        )
        if not args.cpu_only:
            asyncio.run(through_temporal(args, folder))


if __name__ == "__main__":
    main()
