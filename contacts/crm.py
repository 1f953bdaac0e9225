"""When the CRM must hear about a contact, and what it hears: pure, in the contact's task.

After each step the contact workflow asks ``crm_push``: an identify, a stage entered (an MQL
named apart), a new owner or lead status from the handoff, a fit or engagement score that moved
at least the CRM definition's threshold since the last push, or a new demand state. If any,
the state remembers what was sent (``crm_pushed``) and the workflow hands the snapshot to the
one send path, which queues it for the CRM pusher (docs/crm.md): the CRM's own speed and rate
limits never reach the contact. The snapshot carries no personal data; the pusher adds the
email and traits from the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from contacts.contract import ContactState, CrmPushed
from contacts.state import Changes
from crm.records import CrmSnapshot
from lifecycle.stages import Stage
from models.events import ContactEvent

__all__ = ["crm_push", "crm_reasons", "snapshot_of"]


def _moved(now: float | None, before: float | None, threshold: float) -> bool:
    if now is None:
        return False
    return before is None or abs(now - before) >= max(threshold, 1e-9)


def crm_reasons(
    state: ContactState, changes: Changes, inbox: Sequence[ContactEvent], threshold: float
) -> list[str]:
    """Why the CRM should hear about the contact after this step (empty: it need not)."""
    pushed = state.crm_pushed or CrmPushed()
    reasons: list[str] = []
    if any(e.kind == "identify" for e in inbox):
        reasons.append("identify")
    if changes.stage_entries:
        reasons.append("stage")
    if any(e.stage == Stage.MQL for e in changes.stage_entries):
        reasons.append("mql")
    handoff = state.handoff
    if handoff is not None and handoff.owner != pushed.owner:
        reasons.append("owner")
    if handoff is not None and handoff.sla_state != pushed.sla_state:
        reasons.append("lead_status")
    scores = state.scores
    if scores is not None and (
        _moved(scores.fit, pushed.fit, threshold)
        or _moved(scores.engagement, pushed.engagement, threshold)
    ):
        reasons.append("score")
    if changes.demand_states:
        reasons.append("demand_state")
    return reasons


def snapshot_of(state: ContactState, reasons: list[str], now: datetime) -> CrmSnapshot:
    """What the CRM hears: stage, scores, owner, lead status, MQL date, top behaviours,
    demand state (opaque id, no personal data)."""
    scores, handoff = state.scores, state.handoff
    return CrmSnapshot(
        contact_id=state.contact_id,
        reasons=reasons,
        stage=state.stage.value if state.stage else None,
        fit=round(scores.fit, 1) if scores else None,
        engagement=round(scores.engagement, 1) if scores else None,
        owner=handoff.owner if handoff else None,
        sla_state=handoff.sla_state if handoff else None,
        mql_at=state.stage_entered_at(Stage.MQL),
        top_behaviours=list(scores.top_behaviours[:3]) if scores else [],
        demand_state=state.demand_state,
        at=now,
    )


def crm_push(state: ContactState, reasons: list[str], now: datetime) -> tuple[CrmSnapshot, int]:
    """Remember what is sent and return the snapshot with its push number (the send key)."""
    snapshot = snapshot_of(state, reasons, now)
    count = (state.crm_pushed.count if state.crm_pushed else 0) + 1
    state.crm_pushed = CrmPushed(
        count=count,
        fit=snapshot.fit,
        engagement=snapshot.engagement,
        owner=snapshot.owner,
        sla_state=snapshot.sla_state,
    )
    return snapshot, count
