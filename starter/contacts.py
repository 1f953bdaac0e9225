"""Reading a contact for operators: the live state from its workflow, the record from the store."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from models.contact import ContactState
from revops.errors import NotFound
from revops.ids import contact_workflow_id
from store.repo import Store

__all__ = ["ContactView", "load_contact_view"]

ContactView = dict[str, Any]


async def live_state(client: Client, contact_id: str) -> ContactState | None:
    """The workflow's state, or None when it has no workflow (yet)."""
    handle = client.get_workflow_handle(contact_workflow_id(contact_id))
    try:
        state: ContactState = await handle.query("state", result_type=ContactState)
        return state
    except RPCError:
        return None


async def load_contact_view(store: Store, client: Client, user_id: str) -> ContactView:
    """Everything ``contacts show`` prints; raises NotFound for an unknown user id."""
    contact_id = store.resolve(user_id)
    row = store.contact(contact_id) if contact_id else None
    if contact_id is None or row is None:
        raise NotFound(f"no contact with user id {user_id!r}")
    if row.merged_into:
        contact_id = row.merged_into
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
    if state is not None:
        history = [e.model_dump(mode="json", exclude={"message_id"}) for e in state.stage_history]
    return {
        "user_id": row.user_id,
        "contact_id": contact_id,
        "workflow_id": contact_workflow_id(contact_id),
        "stage": state.stage.value if state and state.stage else row.stage,
        "stage_history": history,
        "profile": row.traits,
        "account_id": row.account_id,
        "consent": state.consent.model_dump(mode="json") if state else row.consent,
        "event_counts": state.event_counts if state else {},
        "events_applied": state.events_applied if state else 0,
        "last_event_at": state.last_event_at.isoformat() if state and state.last_event_at else None,
        "renurture": state.renurture.model_dump(mode="json") if state and state.renurture else None,
        "wakeups": [w.model_dump(mode="json") for w in state.wakeups] if state else [],
        "live": state is not None,
    }
