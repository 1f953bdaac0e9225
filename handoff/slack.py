"""The owner's Slack notice as Block Kit: the worded notice, then Accept and Reject buttons.

A rep decides on a lead where the notice reaches them: **Accept**, or **Reject** with one of the
reasons the recycle policy knows (so the rejection recycles the way ``config/recycle.yaml``
says). The actions block's id names the lead by opaque ids only (contact, handoff, owner;
Slack allows 255 characters there and 150 in an option's value, which holds the reason):
Slack never sees personal data, and the gateway's interaction endpoint
(``gateway.slack``) turns a click into the same ``lead_accepted`` / ``lead_rejected`` sales
event the signed webhook makes. After the click the message is replaced by
``decided_blocks``: the notice, and who decided what, without the controls.
Pure functions: the notice activity builds, ``send_effect`` posts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ACCEPT_ACTION",
    "BLOCK_PREFIX",
    "MAX_REASONS",
    "REJECT_ACTION",
    "LeadRef",
    "action_blocks",
    "decided_blocks",
]

ACCEPT_ACTION = "revops_accept"
REJECT_ACTION = "revops_reject"
BLOCK_PREFIX = "revops-lead:"
MAX_REASONS = 100
"""Slack's limit on the options of one select menu."""
_VALUE_LIMIT = 150
"""Slack's limit on an option's value."""

_SECTION_LIMIT = 3000
"""Slack's limit on a section's text."""


@dataclass(frozen=True)
class LeadRef:
    """Which lead the controls decide: opaque ids only, kept by Slack in the block id."""

    contact_id: str
    handoff_id: str
    owner: str

    def block_id(self) -> str:
        """The actions block's id: ``revops-lead:`` and the ids as compact JSON."""
        ids = {"c": self.contact_id, "h": self.handoff_id, "o": self.owner}
        return BLOCK_PREFIX + json.dumps(ids, separators=(",", ":"))

    @staticmethod
    def of_block(block_id: str) -> LeadRef:
        """The lead a block id names; ValueError when the block is not one of ours."""
        if not block_id.startswith(BLOCK_PREFIX):
            raise ValueError("the action's block is not a revops lead decision")
        data = json.loads(block_id.removeprefix(BLOCK_PREFIX))
        if not isinstance(data, dict):
            raise ValueError("the action's block does not name a lead")
        fields = [data.get(key) for key in ("c", "h", "o")]
        if not all(isinstance(f, str) and f for f in fields):
            raise ValueError("the action's block does not name a lead")
        contact_id, handoff_id, owner = (str(f) for f in fields)
        return LeadRef(contact_id, handoff_id, owner)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:_SECTION_LIMIT]}}


def action_blocks(text: str, ref: LeadRef, reasons: Sequence[str]) -> list[dict[str, Any]]:
    """The notice ``text`` with Accept and a "Reject with reason" menu under it."""
    options = [
        {"text": {"type": "plain_text", "text": f"Reject: {r}"[:75]}, "value": r[:_VALUE_LIMIT]}
        for reason in reasons[:MAX_REASONS]
        if (r := reason.strip())
    ]
    accept = {
        "type": "button",
        "action_id": ACCEPT_ACTION,
        "style": "primary",
        "text": {"type": "plain_text", "text": "Accept"},
        "value": "accept",
    }
    reject = {
        "type": "static_select",
        "action_id": REJECT_ACTION,
        "placeholder": {"type": "plain_text", "text": "Reject with reason"},
        "options": options,
    }
    elements = [accept, reject] if options else [accept]
    return [_section(text), {"type": "actions", "block_id": ref.block_id(), "elements": elements}]


def decided_blocks(
    text: str, decision: Literal["accepted", "rejected"], by: str, reason: str | None
) -> list[dict[str, Any]]:
    """The message after the click: the notice, and the decision instead of the controls."""
    said = "Accepted" if decision == "accepted" else f"Rejected ({reason or 'no reason'})"
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{said} by {by}"}]}
    return [_section(text), context]
