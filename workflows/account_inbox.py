"""What an account's workflow handles from its members, declared apart from the workflow.

The contact signals its account through this handler interface, so the contact module does
not import the account workflow (which imports the contact's, to tell members back).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from accounts.contract import MemberUpdate

__all__ = ["AccountInbox"]


class AccountInbox:
    """The account workflow's member signal (``AccountWorkflow`` implements it)."""

    @workflow.signal(name="member_update")
    def member_update(self, update: MemberUpdate) -> None:
        """A member's facts (or its leaving)."""
        raise NotImplementedError
