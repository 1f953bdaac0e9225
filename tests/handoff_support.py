"""Helpers for handoff tests: definitions, leads, sinks, and starting handoffs directly."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowHandle

from handoff.contract import HandoffInput, HandoffResult, SlaStatus
from handoff.routing import RoutingConfig, RoutingInput, Trigger
from handoff.settings import HandoffConfig, HandoffSettings
from revops.settings import Settings
from store.repo import Store
from tests.sinks import HttpSink, http_sink, smtp_sink
from tests.support import track
from workflows.handoff import HandoffWorkflow

REPO = Path(__file__).resolve().parent.parent
ROUTING: dict[str, Any] = yaml.safe_load((REPO / "config" / "routing.yaml").read_text())

BEHAVIOURS = ["Demo Requested", "Pricing Page Viewed", "Case Study Viewed", "Email Opened"]


def routing_body() -> dict[str, Any]:
    """A deep copy of the shipped routing definition, to change in a test."""
    return copy.deepcopy(ROUTING)


def handoff_config(body: dict[str, Any] | None = None, **settings: Any) -> HandoffConfig:
    """Definitions to pin: the shipped routing (or ``body``) and handoff settings."""
    routing = RoutingConfig.model_validate(body or ROUTING)
    return HandoffConfig(routing=routing, settings=HandoffSettings(**settings))


def add_rep(body: dict[str, Any], rep_id: str, team: str, **fields: Any) -> None:
    """Add a rep to a routing body."""
    rep = {"id": rep_id, "name": f"Rep {rep_id}", "email": f"{rep_id}@example.com", "team": team}
    body["reps"].append({**rep, **fields})


def set_rep(body: dict[str, Any], rep_id: str, **fields: Any) -> None:
    """Change fields of a rep in a routing body."""
    for rep in body["reps"]:
        if rep["id"] == rep_id:
            rep.update(fields)


def known_contact(store: Store, user_id: str) -> str:
    """A contact in the store (the notice activity looks its user id up); its opaque id."""
    store.accept(
        [track(user_id, "Identify", type_="identify", traits={"email": f"{user_id}@x.io"})]
    )
    contact_id = store.resolve(user_id)
    assert contact_id is not None
    return contact_id


def handoff_input(
    contact_id: str,
    config: HandoffConfig,
    *,
    n: int = 1,
    trigger: Trigger = "hand_raiser",
    mql_at: datetime | None = None,
    **lead: Any,
) -> HandoffInput:
    """What the contact workflow would pass for this lead (a US lead unless told otherwise)."""
    lead.setdefault("country", "US")
    return HandoffInput(
        contact_id=contact_id,
        handoff_id=f"handoff-{contact_id}-{n}",
        trigger=trigger,
        reason="Demo Requested" if trigger == "hand_raiser" else "fit > 60 and engagement > 40",
        top_behaviours=BEHAVIOURS,
        demand_state="commercial-negotiating",
        demand_from="solution-aware",
        scores={"fit": 65.0, "engagement": 80.0},
        lead=RoutingInput(contact_id=contact_id, trigger=trigger, **lead),
        mql_at=mql_at or datetime.now(UTC),
        config=config,
    )


async def start_handoff(
    client: Client, settings: Settings, data: HandoffInput
) -> WorkflowHandle[HandoffWorkflow, HandoffResult]:
    """Start the handoff directly, as the contact workflow would start its child."""
    return await client.start_workflow(
        HandoffWorkflow.run, data, id=data.handoff_id, task_queue=settings.task_queue
    )


async def sla_of(handle: WorkflowHandle[Any, Any]) -> SlaStatus:
    """The handoff's ``sla`` query."""
    return await handle.query(HandoffWorkflow.sla)


@dataclass
class Sinks:
    """Settings pointing Slack and SMTP at local sinks, and what they received."""

    settings: Settings
    http: HttpSink
    inbox: list[Message]

    def slack(self) -> list[str]:
        """Texts of the Slack messages received so far."""
        return [r.json()["text"] for r in self.http.received if r.path == "/slack"]

    def mails_to(self, address: str) -> list[Message]:
        """Emails received for ``address``."""
        return [m for m in self.inbox if m["To"] == address]


@contextmanager
def notification_sinks(settings: Settings) -> Iterator[Sinks]:
    """A real SMTP server and a real HTTP endpoint for the Slack webhook."""
    with smtp_sink() as (port, inbox), http_sink() as http:
        configured = settings.model_copy(
            update={"smtp_port": port, "slack_webhook_url": f"{http.url}/slack"}
        )
        yield Sinks(configured, http, inbox)
