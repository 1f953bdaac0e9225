"""Reading a contact for operators: live state from its workflow, the record from the store.

``load_contact_view`` feeds ``contacts show``; ``load_why`` answers "why did this happen to
this contact": score contributions after decay, negatives, the model version, the gate, lists
(and the suppression and hold lists that keep automation away), an open opportunity, demand
state, every stage change with its reason and the recycles waiting for their moment, as a
view that ``why_lines`` puts in words a sales rep understands and ``--json`` prints as data.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from rich.table import Table
from temporalio.client import Client
from temporalio.service import RPCError

from audience.consent import Consent
from audience.demand_states import DemandStateEntry
from audience.purposes import PURPOSES, allows
from contacts.contract import ContactState, Renurture, Wakeup
from definitions import LISTS, POLICIES, Definitions
from lifecycle.stages import OPPORTUNITY_OPEN_TRAIT, StageEntry
from revops.errors import NotFound
from revops.ids import contact_workflow_id
from scoring.model import GateResult, ScoreCard, explain
from starter.common import console
from starter.output import Moment, aware
from store.crm import CrmBook
from store.decisions import DecisionLog
from store.effects import Ledger
from store.history import History
from store.repo import Store
from workflows.contact import ContactWorkflow

__all__ = [
    "ContactView",
    "WhyView",
    "load_contact_view",
    "load_why",
    "print_contact",
    "print_why",
    "why_lines",
]

ContactView = dict[str, Any]


async def live_state(client: Client, contact_id: str) -> ContactState | None:
    """The workflow's state, or None when it has no workflow (yet)."""
    handle = client.get_workflow_handle_for(ContactWorkflow.run, contact_workflow_id(contact_id))
    try:
        return await handle.query(ContactWorkflow.state)
    except RPCError:
        return None


def _resolve(store: Store, user_id: str) -> tuple[str, Any]:
    contact_id = store.resolve(user_id)
    row = store.contact(contact_id) if contact_id else None
    if contact_id is None or row is None:
        raise NotFound(f"no contact with user id {user_id!r}")
    return (row.merged_into or contact_id), row


async def load_contact_view(store: Store, client: Client, user_id: str) -> ContactView:
    """Everything ``contacts show`` prints; raises NotFound for an unknown user id."""
    contact_id, row = _resolve(store, user_id)
    state = await live_state(client, contact_id)
    history = [
        {
            "stage": h.stage,
            "at": aware(h.entered_at).isoformat(),
            "reason": h.reason,
            "override": h.override,
        }
        for h in store.stage_history(contact_id)
    ]
    view: ContactView = {
        "user_id": row.user_id,
        "contact_id": contact_id,
        "workflow_id": contact_workflow_id(contact_id),
        "stage": row.stage,
        "stage_history": history,
        "profile": row.traits,
        "account_id": row.account_id,
        "crm": CrmBook(store).link_of(contact_id),
        "live": state is not None,
    }
    if state is not None:
        view.update(_live_fields(state))
    return view


def _live_fields(state: ContactState) -> ContactView:
    scores = state.scores
    handoff = state.handoff
    return {
        "owner": handoff.owner if handoff else None,
        "owner_stage": (handoff.stage or "sdr") if handoff else None,
        "source_owner": handoff.source_owner if handoff else None,
        "sla": (
            {
                "deadline": handoff.deadline.isoformat() if handoff.deadline else None,
                "state": handoff.sla_state,
                "first_contact_at": (
                    handoff.first_contact_at.isoformat() if handoff.first_contact_at else None
                ),
                "outcome": handoff.outcome,
            }
            if handoff
            else None
        ),
        "journeys": [
            {
                "journey": e.journey,
                "version": e.version,
                "enrolled_at": e.enrolled_at.isoformat(),
                "paused": e.paused,
                "workflow_id": e.workflow_id,
            }
            for e in state.enrollments
        ],
        "stage": state.stage.value if state.stage else None,
        "stage_history": [
            e.model_dump(mode="json", exclude={"message_id"}) for e in state.stage_history
        ],
        "scores": {
            "fit": scores.fit if scores else 0,
            "engagement": scores.engagement if scores else 0,
            "engagement_recent": scores.engagement_recent if scores else 0,
            "model_version": scores.model_version if scores else None,
            "top_behaviours": scores.top_behaviours if scores else [],
        },
        "segment": scores.segment if scores else None,
        "lists": state.lists,
        "demand_state": state.demand_state,
        "demand_history": [e.model_dump(mode="json") for e in state.demand_history],
        "consent": state.consent.model_dump(mode="json"),
        "event_counts": state.event_counts,
        "events_applied": state.events_applied,
        "last_event_at": state.last_event_at.isoformat() if state.last_event_at else None,
        "renurture": state.renurture.model_dump(mode="json") if state.renurture else None,
        "wakeups": [w.model_dump(mode="json") for w in state.wakeups],
        "next_evaluation_at": (
            state.next_evaluation_at.isoformat() if state.next_evaluation_at else None
        ),
        "account": _account(state),
    }


def _account(state: ContactState) -> dict[str, Any] | None:
    """The contact's account: which one, how it was found, what the account last said."""
    link, facts = state.account_link, state.account
    if link is None:
        return None
    return {
        "account_id": link.account_id,
        "key": link.key,
        "via": link.via,
        "since": link.since.isoformat(),
        "name": facts.name if facts else None,
        "domain": facts.domain if facts else None,
        "owner": facts.owner if facts else None,
        "priority": facts.priority if facts else None,
        "engaged_contacts": len(facts.engaged) if facts else None,
        "committee": facts.committee if facts else [],
    }


def print_contact(view: ContactView) -> None:
    """The human-readable ``contacts show``."""
    console.print(f"[bold]{view['user_id']}[/bold]  contact {view['contact_id']}")
    console.print(f"stage: [bold]{view['stage']}[/bold]   workflow: {view['workflow_id']}")
    if not view["live"]:
        console.print("[yellow]no running workflow: showing the stored record only[/yellow]")
    table = Table("stage", "entered", "reason", title="stage history")
    for entry in view["stage_history"]:
        reason = entry["reason"] + (" (override)" if entry.get("override") else "")
        table.add_row(entry["stage"], str(entry["at"]), reason)
    console.print(table)
    if "scores" in view:
        scores = view["scores"]
        console.print(
            f"scores: fit {scores['fit']:g}, engagement {scores['engagement']:g} "
            f"({scores['engagement_recent']:g} recent), model {scores['model_version']}, "
            f"segment {view['segment'] or 'default'}"
        )
        console.print(f"lists: {', '.join(view['lists']) or 'none'}")
        _print_owner(view)
        console.print(f"demand state: {view['demand_state'] or 'unknown'}")
        console.print(f"account: {_account_line(view.get('account'))}")
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(view["event_counts"].items()))
        console.print(f"events: {counts or 'none yet'}")
        console.print(f"consent: {json.dumps(view['consent'], default=str)}")
        if view.get("renurture"):
            renurture = view["renurture"]
            console.print(f"re-nurture: since {renurture['since']} ({renurture['reason']})")
    console.print(f"profile: {json.dumps(view['profile'], default=str)}")
    if view.get("crm"):
        crm = view["crm"]
        synced = f"last pushed {crm['synced_at']}" if crm["synced_at"] else "not pushed yet"
        console.print(f"crm: {crm['provider']} {crm['crm_id']} ({synced})")


def _print_owner(view: ContactView) -> None:
    """Who owns the lead: the SDR at MQL, then the AE with the SDR kept as the source."""
    if not view.get("owner"):
        return
    stage = "AE" if view.get("owner_stage") == "ae" else "SDR"
    line = f"owner: {view['owner']} ({stage})"
    if view.get("source_owner"):
        line += f", qualified by SDR {view['source_owner']}"
    sla = view.get("sla") or {}
    console.print(f"{line}; SLA {sla.get('state')}, deadline {sla.get('deadline') or '-'}")


def _account_line(account: dict[str, Any] | None) -> str:
    if account is None:
        return "none"
    name = account["name"] or account["domain"] or account["key"]
    told = (
        f", owner {account['owner'] or 'none'}, {account['engaged_contacts']} engaged, "
        f"priority {account['priority']}"
        if account["priority"] is not None
        else ""
    )
    return f"{name} ({account['account_id']}, via {account['via']}{told})"


class ScoreChange(BaseModel):
    """A stored score change: the scores after it and what caused it."""

    at: Moment
    fit: float
    engagement: float
    model_version: str
    cause: str


class DecisionNote(BaseModel):
    """A journey decision that did something, in the rulebook's plain words."""

    decided_at: Moment
    explanation: list[str]


class PurposeLine(BaseModel):
    """Consent for one purpose now: allowed or not, and the change that decided it."""

    purpose: str
    allowed: bool
    at: Moment | None = None
    source: str | None = None


class BlockedSend(BaseModel):
    """A send the send path skipped at send time, with the reason (consent, suppression)."""

    at: Moment
    channel: str
    journey: str | None
    step: str | None
    summary: str
    reason: str


class WhyView(BaseModel):
    """Everything ``contacts why`` says, as data (``--json`` prints it as is)."""

    user_id: str
    contact_id: str
    at: Moment
    score_card: ScoreCard | None
    gate: GateResult | None
    lists: list[str]
    suppressed_by: list[str] = []
    """Suppression lists the contact is on: no marketing."""
    held_by: list[str] = []
    """Hold lists the contact is on: no automation at all."""
    opportunity_open: bool = False
    demand_state: str | None
    demand_history: list[DemandStateEntry]
    stage: str | None
    stage_history: list[StageEntry]
    renurture: Renurture | None
    recycles: list[Wakeup] = []
    """Recycles waiting for their moment (cause, when, where to)."""
    score_changes: list[ScoreChange]
    decisions: list[DecisionNote]
    consent: list[PurposeLine] = []
    """Each purpose (email marketing, SMS, sales contact): allowed now, since when, source."""
    blocked_sends: list[BlockedSend] = []
    """Sends skipped at send time and why (newest first, 5): the consent that blocked one."""


async def load_why(
    store: Store, client: Client, user_id: str, definitions: Definitions | None = None
) -> WhyView:
    """The view ``contacts why`` prints; raises NotFound for an unknown user id.

    With ``definitions``, the suppression and hold lists the contact is on are named."""
    contact_id, row = _resolve(store, user_id)
    handle = client.get_workflow_handle_for(ContactWorkflow.run, contact_workflow_id(contact_id))
    try:
        state = await handle.query(ContactWorkflow.state)
        why = await handle.query(ContactWorkflow.explain)
    except RPCError as exc:
        raise NotFound(f"{user_id!r} has no running contact workflow") from exc
    changes = History(store).scores(contact_id, limit=5)
    decisions = [r for r in DecisionLog(store).recent(contact_id, limit=8) if r.actions]
    suppression = definitions.get(LISTS).suppression if definitions else frozenset()
    holds = set(definitions.get(POLICIES).hold.lists) if definitions else set()
    return WhyView(
        user_id=row.user_id,
        contact_id=contact_id,
        at=why.at,
        score_card=why.card,
        gate=why.gate,
        lists=state.lists,
        suppressed_by=sorted(suppression & set(state.lists)),
        held_by=sorted(holds & set(state.lists)),
        opportunity_open=state.traits.get(OPPORTUNITY_OPEN_TRAIT) is True,
        recycles=[w for w in state.wakeups if w.kind == "recycle"],
        demand_state=state.demand_state,
        demand_history=state.demand_history,
        stage=state.stage.value if state.stage else None,
        stage_history=state.stage_history,
        renurture=state.renurture,
        score_changes=[
            ScoreChange(
                at=c.at,
                fit=c.fit,
                engagement=c.engagement,
                model_version=c.model_version,
                cause=c.cause,
            )
            for c in changes
        ],
        decisions=[
            DecisionNote(decided_at=r.decided_at, explanation=r.explanation) for r in decisions
        ],
        consent=_purposes(Consent.model_validate(row.consent or {})),
        blocked_sends=_blocked(store, contact_id),
    )


def _purposes(consent: Consent) -> list[PurposeLine]:
    lines = []
    for purpose in PURPOSES:
        entry = consent.purposes.get(purpose)
        lines.append(
            PurposeLine(
                purpose=purpose,
                allowed=allows(consent, purpose),
                at=entry.at if entry else None,
                source=entry.source if entry else None,
            )
        )
    return lines


def _blocked(store: Store, contact_id: str) -> list[BlockedSend]:
    skipped = [r for r in Ledger(store).sends(contact_id) if r.status == "skipped"]
    return [
        BlockedSend(
            at=r.created_at,
            channel=r.channel,
            journey=r.journey,
            step=r.step,
            summary=r.summary,
            reason=r.detail,
        )
        for r in reversed(skipped[-5:])
    ]


def why_lines(why: WhyView) -> list[str]:
    """The explanation in words a sales rep understands, one line each."""
    moment = f"{why.at:%Y-%m-%d %H:%M} UTC"
    lines = [f"Why {why.user_id} (contact {why.contact_id}) is where it is, as of {moment}", ""]
    lines += _score_lines(why)
    lines += ["", f"Lists: {', '.join(why.lists) or 'none'}"]
    lines += _automation_lines(why)
    lines += _demand_lines(why)
    lines += ["", f"Stage: {why.stage or 'none yet'}"]
    for entry in why.stage_history:
        kind = "manual override" if entry.override else "entered"
        lines.append(f"  {entry.at:%Y-%m-%d %H:%M}  {kind} {entry.stage.value}: {entry.reason}")
    if why.renurture is not None:
        lines.append(
            f"  on re-nurture since {why.renurture.since:%Y-%m-%d}: {why.renurture.reason}"
        )
    for wakeup in why.recycles:
        where = wakeup.to_journey and f"journey {wakeup.to_journey}"
        lines.append(
            f"  recycle due {wakeup.at:%Y-%m-%d %H:%M}: {wakeup.reason} -> "
            f"{where or 'list ' + (wakeup.to_list or 'Re-nurture')}"
        )
    lines += _consent_lines(why)
    lines += _score_history_lines(why.score_changes)
    lines += _decision_lines(why.decisions)
    return lines


_PURPOSE_WORDS = {"email_marketing": "email marketing", "sms": "SMS", "sales_contact": "sales"}


def _consent_lines(why: WhyView) -> list[str]:
    """Consent per purpose, and the sends it (or a suppression) blocked."""
    if not why.consent:
        return []
    parts = []
    for line in why.consent:
        word = "allowed" if line.allowed else "refused"
        if line.purpose == "sms" and not line.allowed and line.at is None:
            word = "no opt-in"
        detail = f" since {line.at:%Y-%m-%d} ({line.source})" if line.at else ""
        parts.append(f"{_PURPOSE_WORDS.get(line.purpose, line.purpose)} {word}{detail}")
    lines = ["", "Consent: " + "; ".join(parts)]
    for send in why.blocked_sends:
        where = f"{send.journey}/{send.step}" if send.journey else send.summary
        lines.append(f"  {send.at:%Y-%m-%d %H:%M}  {send.channel} {where} blocked: {send.reason}")
    return lines


def print_why(why: WhyView) -> None:
    """The human-readable ``contacts why``."""
    for line in why_lines(why):
        console.print(line, highlight=False)


def _decision_lines(decisions: list[DecisionNote]) -> list[str]:
    if not decisions:
        return []
    lines = ["", "Recent journey decisions (newest first):"]
    for note in decisions:
        for line in note.explanation:
            lines.append(f"  {note.decided_at:%Y-%m-%d %H:%M}  {line}")
    return lines


def _score_lines(why: WhyView) -> list[str]:
    if why.score_card is None:
        return ["No scoring model is active."]
    lines = explain(why.score_card)
    if why.gate is not None:
        segment = why.gate.segment or "default"
        lines.append(f"Gate ({segment} segment): {why.gate.reason}")
    return lines


def _automation_lines(why: WhyView) -> list[str]:
    """What keeps automation away from the contact right now."""
    lines = []
    if why.suppressed_by:
        names = ", ".join(why.suppressed_by)
        lines.append(f"Suppressed: on {names} (no marketing journey, no marketing send)")
    if why.held_by:
        lines.append(f"Held: on {', '.join(why.held_by)} (all automation paused)")
    if why.opportunity_open:
        lines.append("Opportunity open: no automated marketing until it is won or lost")
    return lines


def _demand_lines(why: WhyView) -> list[str]:
    if why.demand_state is None:
        return ["Demand state: none observed yet"]
    came_from = why.demand_history[-1].previous if why.demand_history else None
    since = why.demand_history[-1].at if why.demand_history else None
    line = f"Demand state: {why.demand_state}"
    if since is not None:
        line += f" since {since:%Y-%m-%d}"
    if came_from:
        line += f" (came from {came_from})"
    return [line]


def _score_history_lines(changes: list[ScoreChange]) -> list[str]:
    if not changes:
        return []
    lines = ["", "Recent score changes:"]
    for change in changes:
        lines.append(
            f"  {change.at:%Y-%m-%d %H:%M}  fit {change.fit:g}, engagement {change.engagement:g}"
            f" (model {change.model_version}) after: {change.cause}"
        )
    return lines
