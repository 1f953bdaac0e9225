"""The handoff settings (``config/handoff.yaml``): notice channels, customer success, limits.

Pure models: the definitions service reads the file or the deployed version and pins the
result, with the routing definition, in a ``HandoffConfig`` when a handoff starts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from handoff.routing import RoutingConfig
from revops.strict import StrictModel

__all__ = [
    "SQL_STAGE_ENTERED",
    "CustomerSuccess",
    "HandoffConfig",
    "HandoffSettings",
    "NoticeChannel",
    "NotifySettings",
]


SQL_STAGE_ENTERED = "SQL Stage Entered"
"""What the contact tells its handoff when it entered SQL without the qualify event (an
operator's stage change): the handoff treats it as the SDR's qualification."""

NoticeChannel = Literal["slack", "email", "crm_task"]
"""Channels a notice can use (an outbound webhook is added with ``notify.webhook_url``)."""


class NotifySettings(StrictModel):
    """Which channels each notice uses; ``webhook_url`` adds an outbound webhook to the owner's
    notice (the handoff context as JSON, signed like every revops webhook)."""

    owner: tuple[NoticeChannel, ...] = ("slack", "email", "crm_task")
    reminder: tuple[NoticeChannel, ...] = ("slack", "email")
    escalation: tuple[NoticeChannel, ...] = ("crm_task", "slack")
    reply_warning: tuple[NoticeChannel, ...] = ("crm_task",)
    customer_success: tuple[NoticeChannel, ...] = ("crm_task", "slack")
    webhook_url: str | None = None


class CustomerSuccess(StrictModel):
    """Who receives a won deal: an opaque owner id for the CRM task, an optional address."""

    owner: str = Field(default="cs-team", min_length=1)
    name: str = "Customer Success"
    email: str | None = None


class HandoffSettings(StrictModel):
    """The handoff's own definition (``config/handoff.yaml``); routing and SLA policies live in
    ``config/routing.yaml``. Sales activity names are those of the sales webhook."""

    version: str = "builtin"
    first_touch_events: tuple[str, ...] = (
        "Sales Email Sent",
        "Sales Call Logged",
        "Meeting Booked",
    )
    qualify_event: str = "Lead Qualified"
    """The SDR qualified the lead (an SQL): an Account Executive takes over (``stage: ae``)."""
    accept_event: str = "Lead Accepted"
    reject_event: str = "Lead Rejected"
    opportunity_event: str = "Opportunity Created"
    won_event: str = "Closed Won"
    lost_event: str = "Closed Lost"
    notify: NotifySettings = Field(default_factory=NotifySettings)
    customer_success: CustomerSuccess = Field(default_factory=CustomerSuccess)
    max_reassignments: int = Field(default=2, ge=0)
    close_window_days: float = Field(default=365, gt=0)
    """After acceptance, how long the handoff waits for the deal to close before it ends."""
    attainment_target: float = Field(default=0.8, gt=0, le=1)
    """SLA attainment below this is flagged as a capacity problem in ``reports sla``."""
    history_limit: int = Field(default=2000, ge=20)


class HandoffConfig(BaseModel):
    """The definitions one handoff runs on, pinned when it starts."""

    routing: RoutingConfig
    settings: HandoffSettings = Field(default_factory=HandoffSettings)
