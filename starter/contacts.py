"""Reading a contact for operators: live state from its workflow, the record from the store.

``load_contact_view`` feeds ``contacts show``; ``load_why`` answers "why did this happen to
this contact" in words a sales rep understands: score contributions after decay, negatives,
the model version, the gate, lists, demand state and every stage change with its reason.
"""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from temporalio.client import Client
from temporalio.service import RPCError

from models.contact import ContactState, Explanation
from revops.errors import NotFound
from revops.ids import contact_workflow_id
from revops.scoring import explain
from starter.common import console
from store.decisions import DecisionLog
from store.history import History
from store.repo import Store

__all__ = ["ContactView", "load_contact_view", "load_why", "print_contact"]

ContactView = dict[str, Any]


async def live_state(client: Client, contact_id: str) -> ContactState | None:
    """The workflow's state, or None when it has no workflow (yet)."""
    handle = client.get_workflow_handle(contact_workflow_id(contact_id))
    try:
        state: ContactState = await handle.query("state", result_type=ContactState)
    except RPCError:
        return None
    return state


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
            "at": h.entered_at.isoformat(),
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
        console.print(f"demand state: {view['demand_state'] or 'unknown'}")
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(view["event_counts"].items()))
        console.print(f"events: {counts or 'none yet'}")
        console.print(f"consent: {json.dumps(view['consent'], default=str)}")
        if view.get("renurture"):
            renurture = view["renurture"]
            console.print(f"re-nurture: since {renurture['since']} ({renurture['reason']})")
    console.print(f"profile: {json.dumps(view['profile'], default=str)}")


async def load_why(store: Store, client: Client, user_id: str) -> list[str]:
    """The explanation lines of ``contacts why``; raises NotFound for an unknown user id."""
    contact_id, row = _resolve(store, user_id)
    handle = client.get_workflow_handle(contact_workflow_id(contact_id))
    try:
        state: ContactState = await handle.query("state", result_type=ContactState)
        why: Explanation = await handle.query("explain", result_type=Explanation)
    except RPCError as exc:
        raise NotFound(f"{user_id!r} has no running contact workflow") from exc
    moment = f"{why.at:%Y-%m-%d %H:%M} UTC"
    lines = [f"Why {row.user_id} (contact {contact_id}) is where it is, as of {moment}", ""]
    lines += _score_lines(why)
    lines += ["", f"Lists: {', '.join(state.lists) or 'none'}"]
    lines += _demand_lines(state)
    lines += ["", f"Stage: {state.stage.value if state.stage else 'none yet'}"]
    for entry in state.stage_history:
        kind = "manual override" if entry.override else "entered"
        lines.append(f"  {entry.at:%Y-%m-%d %H:%M}  {kind} {entry.stage.value}: {entry.reason}")
    if state.renurture is not None:
        lines.append(
            f"  on re-nurture since {state.renurture.since:%Y-%m-%d}: {state.renurture.reason}"
        )
    lines += _score_history_lines(History(store), contact_id)
    lines += _decision_lines(DecisionLog(store), contact_id)
    return lines


def _decision_lines(log: DecisionLog, contact_id: str) -> list[str]:
    rows = [row for row in log.recent(contact_id, limit=8) if row.actions]
    if not rows:
        return []
    lines = ["", "Recent journey decisions (newest first):"]
    for row in rows:
        for line in row.explanation:
            lines.append(f"  {row.decided_at:%Y-%m-%d %H:%M}  {line}")
    return lines


def _score_lines(why: Explanation) -> list[str]:
    if why.card is None:
        return ["No scoring model is active."]
    lines = explain(why.card)
    if why.gate is not None:
        segment = why.gate.segment or "default"
        lines.append(f"Gate ({segment} segment): {why.gate.reason}")
    return lines


def _demand_lines(state: ContactState) -> list[str]:
    if state.demand_state is None:
        return ["Demand state: none observed yet"]
    came_from = state.demand_history[-1].previous if state.demand_history else None
    since = state.demand_history[-1].at if state.demand_history else None
    line = f"Demand state: {state.demand_state}"
    if since is not None:
        line += f" since {since:%Y-%m-%d}"
    if came_from:
        line += f" (came from {came_from})"
    return [line]


def _score_history_lines(history: History, contact_id: str) -> list[str]:
    rows = history.scores(contact_id, limit=5)
    if not rows:
        return []
    lines = ["", "Recent score changes:"]
    for row in rows:
        lines.append(
            f"  {row.at:%Y-%m-%d %H:%M}  fit {row.fit:g}, engagement {row.engagement:g}"
            f" (model {row.model_version}) after: {row.cause}"
        )
    return lines
