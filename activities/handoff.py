"""Activities of the sales handoff: load definitions, route atomically, record SLAs, notify.

- ``assign_owner`` chooses (or replaces) the lead's owner in one store transaction that holds
  the round-robin state's lock (``store.routing_state``), so concurrent handoffs take fair
  turns and open-lead counts stay right; retries return the decision already made.
- ``release_owner`` frees the open lead when it is accepted, rejected or closed.
- ``record_sla`` writes the handoff's SLA row (only forward, by revision).
- ``send_handoff_notice`` words a notice and sends each channel through the one send path,
  ``EffectActivities.send_effect`` (ledger claim first; key
  ``<contact>/<handoff>/<what>/<channel>``), so a retried notice never posts twice. It looks
  the contact's user id up in the store for the "see more" command: the workflow only knows
  the opaque contact id. With a Slack signing secret set, the owner's Slack notice (assigned,
  reminder) carries Accept and "Reject with reason" controls (``handoff.slack``; the reasons
  are the recycle policy's for a rejection), answered by the gateway's Slack interaction
  endpoint; without one nothing could verify a click, so the notice has no controls.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from activities.effects import EffectActivities
from definitions import HANDOFF, RECYCLE, ROUTING, Definitions
from handoff.contract import (
    AssignRequest,
    AssignResult,
    Notice,
    NoticeResult,
    RecordResult,
    ReleaseRequest,
    ReleaseResult,
    SlaRecord,
)
from handoff.notice import Composed, compose
from handoff.settings import HandoffConfig, NoticeChannel
from handoff.slack import LeadRef, action_blocks
from models.effects import (
    EffectRequest,
    EffectResult,
    EmailPayload,
    SlackPayload,
    TaskPayload,
    WebhookPayload,
)
from store.repo import Store
from store.routing_state import RoutingBook
from store.sla import SlaBook

__all__ = ["HandoffActivities"]


class HandoffActivities:
    """Store, definitions and the send path for handoff workflows."""

    def __init__(
        self,
        store: Store,
        definitions: Definitions,
        effects: EffectActivities,
        *,
        slack_decisions: bool = True,
    ) -> None:
        self._store = store
        self._slack_decisions = slack_decisions
        self._effects = effects
        self._routing = RoutingBook(store)
        self._sla = SlaBook(store)
        self._config = definitions.memo(
            lambda: HandoffConfig(
                routing=definitions.get(ROUTING), settings=definitions.get(HANDOFF)
            )
        )
        self._reasons = definitions.memo(lambda: _reject_reasons(definitions))

    def load_config(self) -> HandoffConfig:
        """The active routing definition and handoff settings (deployed, else ``config/``)."""
        return self._config.get()

    @activity.defn(name="assign_owner")
    def assign_owner(self, request: AssignRequest) -> AssignResult:
        """Route the lead (or reassign it) once per step; returns the decision and its trace."""
        loaded = None if request.config is not None else self.load_config()
        config = request.config or loaded
        assert config is not None
        decision = self._routing.assign(
            config.routing,
            request.lead,
            request.now,
            handoff_id=request.handoff_id,
            step=request.step,
            tried=request.tried,
            fresh=request.fresh,
        )
        return AssignResult(decision=decision, config=loaded)

    @activity.defn(name="release_owner")
    def release_owner(self, request: ReleaseRequest) -> ReleaseResult:
        """Free the owner's open lead (once per handoff)."""
        released = self._routing.release(
            request.handoff_id,
            request.rep_id,
            request.reason,
            datetime.now(UTC),
            stage=request.stage,
        )
        return ReleaseResult(released=released)

    @activity.defn(name="record_sla")
    def record_sla(self, record: SlaRecord) -> RecordResult:
        """Write the handoff's SLA row (never back to an older revision)."""
        return RecordResult(written=self._sla.record(record))

    @activity.defn(name="send_handoff_notice")
    async def send_handoff_notice(self, notice: Notice) -> NoticeResult:
        """Send each channel of ``notice`` through ``send_effect`` (all at once, each once)."""
        user_id = await asyncio.to_thread(self._store.user_id_of, notice.brief.contact_id)
        words = compose(notice, user_id)
        context = _context(notice, words, user_id)
        skipped: list[EffectResult] = []
        requests: list[EffectRequest] = []
        for channel in notice.channels:
            if channel == "email" and not notice.to.email:
                # Never fall back to the contact's address: this notice is for an employee.
                detail = f"no work address for {notice.to.id}"
                skipped.append(
                    EffectResult(key=f"{notice.key}/email", status="skipped", detail=detail)
                )
                continue
            request = _request(notice, channel, context)
            decidable = notice.kind in _DECIDABLE and bool(notice.brief.owner)
            if channel == "slack" and decidable and self._slack_decisions:
                request = self._with_controls(request, notice, words)
            requests.append(request)
        if notice.webhook_url:
            requests.append(_webhook(notice, context))
        sent = await asyncio.gather(*(self._effects.send_effect(r) for r in requests))
        return NoticeResult(results=[*sent, *skipped])

    def _with_controls(
        self, request: EffectRequest, notice: Notice, words: Composed
    ) -> EffectRequest:
        """The owner's Slack notice with Accept and "Reject with reason" under the text."""
        assert request.slack is not None
        brief = notice.brief
        ref = LeadRef(brief.contact_id, brief.handoff_id, brief.owner or notice.to.id)
        blocks = action_blocks(words.text, ref, self._reasons.get())
        slack = request.slack.model_copy(update={"blocks": blocks})
        return request.model_copy(update={"slack": slack})


_DECIDABLE = frozenset({"assigned", "reminder"})
"""Notices to the lead's owner, who can accept or reject it from Slack."""


def _reject_reasons(definitions: Definitions) -> list[str]:
    """The reasons the recycle policy names for a rejection (a rep picks one in Slack), and
    "Other", which takes the cause's own rule."""
    rejected = definitions.get(RECYCLE).causes.get("rejected")
    named = list(rejected.reasons) if rejected else []
    return [*named, *(["Other"] if "other" not in {n.lower() for n in named} else [])]


def _context(notice: Notice, words: Composed, user_id: str | None) -> dict[str, Any]:
    """Template context: the worded notice, the structured brief, and the user id (store only)."""
    brief = notice.brief.model_dump(mode="json")
    return {
        "subject": words.subject,
        "text": words.text,
        "task_title": words.task_title,
        "kind": notice.kind,
        "recipient": notice.to.id,
        "user_id": user_id,
        "handoff": brief,
    }


_TEXT = "{{ text }}"
_SUBJECT = "{{ subject }}"
_TASK_TITLE = "{{ task_title }}"


def _request(notice: Notice, channel: NoticeChannel, context: dict[str, Any]) -> EffectRequest:
    """One channel of a notice; the texts are already worded and travel in the context, so the
    send path's templates only insert them (nothing from a lead is evaluated as a template)."""
    base = EffectRequest(
        key=f"{notice.key}/{channel}",
        contact_id=notice.brief.contact_id,
        channel=channel,
        marketing=False,
        summary=f"handoff {notice.kind} to {notice.to.id} via {channel}",
        context=context,
    )
    if channel == "slack":
        return base.model_copy(update={"slack": SlackPayload(text=_TEXT)})
    if channel == "email":
        email = EmailPayload(subject=_SUBJECT, body=_TEXT, to_rep=notice.to.email)
        return base.model_copy(update={"email": email})
    task = TaskPayload(
        title=_TASK_TITLE,
        description=_TEXT,
        owner=notice.to.id,
        due_at=notice.brief.deadline if notice.kind == "assigned" else None,
        kind=f"handoff_{notice.kind}",
    )
    return base.model_copy(update={"task": task})


def _webhook(notice: Notice, context: dict[str, Any]) -> EffectRequest:
    assert notice.webhook_url is not None
    return EffectRequest(
        key=f"{notice.key}/webhook",
        contact_id=notice.brief.contact_id,
        channel="webhook",
        marketing=False,
        summary=f"handoff {notice.kind} webhook",
        webhook=WebhookPayload(url=notice.webhook_url, body={"event": f"handoff.{notice.kind}"}),
        context={"handoff": context["handoff"], "owner": notice.to.id},
    )
