"""What the pusher needs of a CRM connector (HubSpot, Salesforce), and its one error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from crm.ratelimit import RateLimit
from crm.records import ContactRecord, CrmTask, PushOutcome

__all__ = ["Connector", "CrmError"]


class CrmError(Exception):
    """The CRM refused a call (not a rate limit, not a passing outage): kept as the row's
    error and shown by ``revops crm status``."""


class Connector(Protocol):
    """A CRM the pusher can push contacts and tasks to."""

    limit: RateLimit

    def push(self, records: Sequence[ContactRecord]) -> PushOutcome:
        """Create or update the batch's contacts; CRM ids by contact id."""

    def plan(self, records: Sequence[ContactRecord]) -> PushOutcome:
        """What ``push`` would write, without writing."""

    def push_tasks(self, tasks: Sequence[CrmTask], crm_ids: dict[str, str]) -> list[str]:
        """Create the tasks of contacts with CRM ids; the keys pushed."""

    def usage(self) -> dict[str, int]:
        """The vendor's own count of API use (Salesforce's daily limit), if it gives one."""
