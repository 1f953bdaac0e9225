"""``revops demo seed``: a few minutes of realistic traffic through the real accept path.

For a running stack (``make run``), so the dashboard and the reports have something to show:
visitors arrive from campaigns (UTM-tagged page views, anonymous until they fill a form),
identify themselves and their account, download content, register for and attend webinars,
view pricing, request demos; sales accepts, qualifies or rejects the MQLs, opens
opportunities (several contacts of one account share one), wins and loses them; some lost
leads are recycled to Lead; journey emails that went out are opened and clicked.

Every event is stored by ``Store.accept`` and delivered to the contact workflows by the relay,
exactly as the gateway and ``revops events send`` do (sales activity is built by the sales
webhook's own mapping), so stage history, handoffs, SLA records and journey sends are real.
Journey emails need an SMTP server: when nothing listens on the configured port, the command
runs a local one that accepts and drops them while it seeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from temporalio.client import Client

from gateway.relay import Relay
from gateway.sales import SalesWebhook, to_incoming_sales
from models.events import StageOverride
from models.ingest import IncomingEvent
from revops.ids import contact_workflow_id
from revops.logging import get_logger
from revops.settings import Settings
from store.effects import SendRow
from store.repo import Store
from workflows.contact import ContactWorkflow

__all__ = ["SeedSummary", "seed"]

log = get_logger(__name__)

_CAMPAIGNS = (
    ("google", "cpc", "brand-search"),
    ("google", "cpc", "competitor-terms"),
    ("linkedin", "paid_social", "abm-q4"),
    ("newsletter", "email", "monthly-digest"),
    ("partner-site", "referral", "partner-webinar"),
    ("twitter", "social", "launch-week"),
)
_COMPANIES = (
    ("acme-robotics", "Software", 1500, "US"),
    ("northwind", "Fintech", 420, "GB"),
    ("globex", "Healthcare Technology", 90, "DE"),
    ("initech", "Software", 260, "US"),
    ("umbrella", "Cybersecurity", 3200, "US"),
    ("hooli", "Software", 45, "CA"),
    ("vandelay", "Manufacturing", 700, "NL"),
    ("stark", "Fintech", 1200, "US"),
)
_TITLES = ("VP Engineering", "Head of Growth", "Marketing Manager", "CTO", "Analyst")
_CONTENT = ("Content Downloaded", "Webinar Registered", "Signed Up")
_REJECTIONS = ("No budget", "Bad timing", "Not a fit")
_LOSSES = ("No Budget", "Chose a competitor", "No decision")


class SeedSummary(BaseModel):
    """What the seeding did."""

    contacts: int
    events: int
    sales_activities: int
    opportunities: int
    recycled: int
    opens: int
    clicks: int
    seconds: float


@dataclass
class _Visitor:
    """One person's planned path through the funnel."""

    number: int
    user_id: str
    anonymous_id: str
    company: tuple[str, str, int, str]
    campaign: tuple[str, str, str]
    intent: float
    steps: list[Callable[[], list[IncomingEvent]]] = field(default_factory=list)
    due: float = 0.0


class _Seeder:
    def __init__(self, store: Store, relay: Relay, client: Client, rng: random.Random) -> None:
        self.store = store
        self.relay = relay
        self.client = client
        self.rng = rng
        self.run = uuid.uuid4().hex[:6]
        self.events = 0
        self.sales = 0
        self.opportunities: dict[str, list[str]] = {}
        self.recycled = 0
        self.opens = 0
        self.clicks = 0
        self.engaged: set[str] = set()
        self.pending_recycles: list[str] = []

    # ---- building events -------------------------------------------------------------------

    def _event(self, visitor: _Visitor, name: str, **fields: Any) -> IncomingEvent:
        now = datetime.now(UTC)
        anonymous = fields.pop("anonymous", False)
        return IncomingEvent(
            message_id=f"demo-{uuid.uuid4()}",
            type=fields.pop("type", "track"),
            name=name,
            user_id=None if anonymous else visitor.user_id,
            anonymous_id=visitor.anonymous_id,
            timestamp=now,
            received_at=now,
            **fields,
        )

    def _utm(self, visitor: _Visitor) -> dict[str, Any]:
        source, medium, name = visitor.campaign
        return {"campaign": {"source": source, "medium": medium, "name": name}}

    def _sale(self, visitor: _Visitor, activity: str, **fields: Any) -> IncomingEvent:
        self.sales += 1
        hook = SalesWebhook.model_validate(
            {
                "id": f"demo-{uuid.uuid4()}",
                "type": activity,
                "occurred_at": datetime.now(UTC).isoformat(),
                "contact": {"user_id": visitor.user_id},
                "rep_id": f"rep-{visitor.number % 5}",
                **fields,
            }
        )
        return to_incoming_sales(hook, visitor.user_id, datetime.now(UTC))

    def plan(self, number: int) -> _Visitor:
        rng = self.rng
        company = _COMPANIES[rng.randrange(len(_COMPANIES))]
        visitor = _Visitor(
            number=number,
            user_id=f"demo-{self.run}-{number}",
            anonymous_id=f"anon-{self.run}-{number}",
            company=company,
            campaign=_CAMPAIGNS[rng.randrange(len(_CAMPAIGNS))],
            intent=rng.random(),
        )
        domain, industry, size, country = company
        utm = self._utm(visitor)
        traits = {
            "email": f"person{number}@{domain}.example",
            "title": rng.choice(_TITLES),
            "industry": industry,
            "company_size": size,
            "country": country,
        }
        steps = visitor.steps
        steps.append(
            lambda: [
                self._event(visitor, "Page Viewed", type="page", context=utm, anonymous=True),
                self._event(visitor, "Blog Page Viewed", type="page", context=utm, anonymous=True),
            ]
        )
        steps.append(
            lambda: [
                self._event(visitor, "Identify", type="identify", traits=traits),
                self._event(visitor, "Group", type="group", group_id=f"acct-{domain}"),
                self._event(visitor, rng.choice(_CONTENT), context=utm),
            ]
        )
        if visitor.intent > 0.3:
            steps.append(
                lambda: [
                    self._event(visitor, "Pricing Page Viewed", type="track"),
                    self._event(visitor, "Webinar Attended", properties={"webinar": "Q4 launch"}),
                ]
            )
        if visitor.intent > 0.55:
            steps.append(lambda: [self._event(visitor, "Demo Requested", context=utm)])
            steps.append(lambda: self._sales_path(visitor))
        return visitor

    def _sales_path(self, visitor: _Visitor) -> list[IncomingEvent]:
        rng = self.rng
        touch = self._sale(visitor, rng.choice(("call_logged", "email_sent")))
        if rng.random() < 0.2:
            return [touch, self._sale(visitor, "lead_rejected", reason=rng.choice(_REJECTIONS))]
        found = [touch, self._sale(visitor, "lead_accepted")]
        if rng.random() < 0.75:
            found.append(self._sale(visitor, "lead_qualified"))
            account = visitor.company[0]
            opportunity = f"opp-{self.run}-{account}"
            amount = round(rng.uniform(8, 90)) * 1000
            contacts = self.opportunities.setdefault(opportunity, [])
            contacts.append(visitor.user_id)
            found.append(
                self._sale(
                    visitor,
                    "opportunity_created",
                    opportunity_id=opportunity,
                    amount=amount if len(contacts) == 1 else None,
                )
            )
            visitor.steps.append(lambda: self._close(visitor, opportunity, amount))
        return found

    def _close(self, visitor: _Visitor, opportunity: str, amount: float) -> list[IncomingEvent]:
        if self.rng.random() < 0.55:
            return [self._sale(visitor, "closed_won", opportunity_id=opportunity, amount=amount)]
        lost = self._sale(
            visitor, "closed_lost", opportunity_id=opportunity, reason=self.rng.choice(_LOSSES)
        )
        visitor.steps.append(lambda: self._recycle(visitor))
        return [lost]

    def _recycle(self, visitor: _Visitor) -> list[IncomingEvent]:
        """Back to Lead, as a recycle policy would (an audited manual change here)."""
        self.recycled += 1
        contact_id = self.store.resolve(visitor.user_id)
        if contact_id is not None:
            self.pending_recycles.append(contact_id)
        return []

    # ---- delivering --------------------------------------------------------------------------

    async def deliver(self, events: list[IncomingEvent]) -> None:
        if not events:
            return
        result = await asyncio.to_thread(self.store.accept, events)
        self.events += result.accepted
        for contact_id in result.contact_ids:
            await self.relay.drain_once(contact_id)

    async def recycle_now(self) -> None:
        while self.pending_recycles:
            contact_id = self.pending_recycles.pop()
            handle = self.client.get_workflow_handle(contact_workflow_id(contact_id))
            change = StageOverride(stage="Lead", reason="recycled after closed lost", actor="demo")
            with contextlib.suppress(Exception):
                await handle.signal(ContactWorkflow.override_stage, change)

    async def engage(self, visitors: dict[str, _Visitor]) -> None:
        """Opens and clicks of the journey emails that went out since the last look."""
        query = select(SendRow.key, SendRow.contact_id, SendRow.journey, SendRow.step).where(
            SendRow.status == "sent", SendRow.journey.is_not(None)
        )
        with self.store._sessions() as session:
            sent = [row for row in session.execute(query) if row.key not in self.engaged]
        events = []
        for key, contact_id, journey, step in sent:
            self.engaged.add(key)
            user_id = self.store.user_id_of(contact_id)
            visitor = visitors.get(user_id or "")
            if visitor is None or self.rng.random() > 0.65:
                continue
            properties = {"journey": journey, "step": step}
            self.opens += 1
            events.append(self._event(visitor, "Email Opened", properties=properties))
            if self.rng.random() < 0.35:
                self.clicks += 1
                events.append(self._event(visitor, "Email Clicked", properties=properties))
        await self.deliver(events)


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@contextlib.contextmanager
def _smtp_while_seeding(settings: Settings) -> Iterator[str]:
    """A local SMTP server that drops mail, unless one listens already (or none can run)."""
    if _listening(settings.smtp_host, settings.smtp_port):
        yield "journey email goes to the SMTP server already listening"
        return
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        yield "no SMTP server: journey emails wait and retry (pip install aiosmtpd)"
        return

    class _Drop:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            return "250 accepted (revops demo: dropped)"

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-message lines
    controller = Controller(_Drop(), hostname=settings.smtp_host, port=settings.smtp_port)
    controller.start()
    try:
        yield f"journey email accepted and dropped by a demo SMTP server on {settings.smtp_port}"
    finally:
        controller.stop()


async def seed(
    store: Store,
    client: Client,
    settings: Settings,
    *,
    contacts: int,
    minutes: float,
    rng_seed: int,
    progress: Callable[[str], None],
) -> SeedSummary:
    """Run the visitors' paths over ``minutes``; returns what was sent."""
    rng = random.Random(rng_seed)
    relay = Relay(store, client, settings.task_queue)
    seeder = _Seeder(store, relay, client, rng)
    started = time.monotonic()
    span = max(minutes * 60, 1.0)
    visitors = [seeder.plan(n) for n in range(contacts)]
    for visitor in visitors:
        visitor.due = started + rng.uniform(0, span * 0.6)
    by_user = {v.user_id: v for v in visitors}
    with _smtp_while_seeding(settings) as note:
        progress(note)
        last_report = started
        while True:
            now = time.monotonic()
            ready = [v for v in visitors if v.steps and v.due <= now]
            for visitor in ready:
                step = visitor.steps.pop(0)
                await seeder.deliver(step())
                visitor.due = now + rng.uniform(span * 0.03, span * 0.12)
            await seeder.recycle_now()
            await seeder.engage(by_user)
            if now - last_report > 15:
                last_report = now
                progress(f"{seeder.events} events, {seeder.sales} sales activities so far")
            if not any(v.steps for v in visitors) and now - started >= span:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # the last journey sends, then their opens and clicks
        await seeder.engage(by_user)
    return SeedSummary(
        contacts=contacts,
        events=seeder.events,
        sales_activities=seeder.sales,
        opportunities=len(seeder.opportunities),
        recycled=seeder.recycled,
        opens=seeder.opens,
        clicks=seeder.clicks,
        seconds=round(time.monotonic() - started, 1),
    )
