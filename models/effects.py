"""Outbound effects (email, SMS, webhook, Slack, CRM task, CRM push): one request shape, one key
scheme.

Workflows build an ``EffectRequest`` with an idempotency ``key`` that names the step that wants
the effect (``<contact>/<enrollment or handoff>/<step>``); the send activity records the key
before acting, so a retried activity or a restarted worker never sends twice. Payloads hold
templates and opaque ids, never an address: the activity looks the address up in the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "PACED_CHANNELS",
    "Channel",
    "EffectRequest",
    "EffectResult",
    "EmailPayload",
    "InAppPayload",
    "SlackPayload",
    "SmsPayload",
    "TaskPayload",
    "WebhookPayload",
    "send_task_queue",
]

Channel = Literal["email", "sms", "webhook", "slack", "crm_task", "in_app", "crm"]
"""``crm``: queue the contact's push to the CRM (the snapshot is ``context["crm"]``)."""

PACED_CHANNELS: tuple[Channel, ...] = ("email", "sms")
"""Channels whose journey sends run on their own task queue, at the operator's rate."""


def send_task_queue(task_queue: str, channel: str) -> str | None:
    """The task queue a journey's send on ``channel`` runs on (None: the journey's own).

    Each paced channel has one, served by every worker with Temporal's task-queue rate limit
    (``send_rates``), so the rate holds across all workers (docs/email.md, "Paced sending").
    """
    return f"{task_queue}-send-{channel}" if channel in PACED_CHANNELS else None


class EmailPayload(BaseModel):
    """Jinja2 templates rendered with the contact's profile (from the store) and ``context``."""

    subject: str
    body: str
    html: str | None = None
    to_rep: str | None = None
    """Send to this rep (routing id) instead of the contact."""


class SmsPayload(BaseModel):
    """A text message template."""

    text: str


class WebhookPayload(BaseModel):
    """A JSON POST, signed with HMAC-SHA256 when a secret is configured."""

    url: str
    body: dict[str, Any] = Field(default_factory=dict)


class SlackPayload(BaseModel):
    """An incoming-webhook message (``webhook_url`` defaults to the configured one)."""

    text: str
    webhook_url: str | None = None
    blocks: list[dict[str, Any]] = Field(default_factory=list)


class TaskPayload(BaseModel):
    """A CRM task for a rep or manager."""

    title: str
    description: str = ""
    owner: str
    due_at: datetime | None = None
    kind: str = "follow_up"


class InAppPayload(BaseModel):
    """An in-product message: title and body templates, an optional call to action."""

    title: str
    body: str
    cta_label: str | None = None
    cta_url: str | None = None


class EffectRequest(BaseModel):
    """One effect a workflow step wants, exactly once."""

    key: str
    contact_id: str
    channel: Channel
    marketing: bool = True
    summary: str = ""
    context: dict[str, Any] = Field(default_factory=dict)
    email: EmailPayload | None = None
    sms: SmsPayload | None = None
    webhook: WebhookPayload | None = None
    slack: SlackPayload | None = None
    task: TaskPayload | None = None
    in_app: InAppPayload | None = None


class EffectResult(BaseModel):
    """What happened: sent now, already sent before (duplicate), or skipped with a reason."""

    key: str
    status: Literal["sent", "duplicate", "skipped"]
    detail: str = ""
    rendered_subject: str | None = None
    """No longer set (it may name the person and results are kept in history); kept so
    histories written before it went still decode."""
