"""Accounts as their workflows last recorded them, for ``revops accounts`` and ``contacts show``.

The account workflow is the source of truth; this is its record (one row per account, one per
member), written by a local activity after each step that changed something. Member rows are
written only for members that changed, so a 500-member account costs a few rows per step.
No personal data: members are opaque contact ids with their committee role.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from accounts.contract import AccountRecord, MemberRecord
from audience.facts import AccountFacts
from store.repo import Store
from store.schema import Base, JsonType

__all__ = ["AccountBook", "AccountMemberRow", "AccountRow"]


class AccountRow(Base):
    """One account: what its members see, and counts for the list."""

    __tablename__ = "accounts"

    account_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(300))
    domain: Mapped[str | None] = mapped_column(String(255), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    owner: Mapped[str | None] = mapped_column(String(255))
    members: Mapped[int] = mapped_column(Integer, default=0)
    engaged: Mapped[int] = mapped_column(Integer, default=0)
    plays: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    facts: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AccountMemberRow(Base):
    """A contact's membership of an account (a contact is in one account at a time)."""

    __tablename__ = "account_members"

    contact_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(32), index=True)
    role: Mapped[str | None] = mapped_column(String(32))
    executive: Mapped[bool] = mapped_column(Boolean, default=False)
    record: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AccountBook:
    """Reads and idempotent writes of the account record."""

    def __init__(self, store: Store) -> None:
        self._sessions = store._sessions

    def record(
        self,
        facts: AccountFacts,
        key: str,
        plays: int,
        changed: dict[str, MemberRecord],
        left: Sequence[str],
        at: datetime,
    ) -> None:
        """Upsert the account, its changed members, and drop those that left (one commit)."""
        with self._sessions.begin() as session:
            row = session.get(AccountRow, facts.account_id)
            if row is None:
                row = AccountRow(account_id=facts.account_id)
                session.add(row)
            row.key, row.domain, row.name, row.owner = key, facts.domain, facts.name, facts.owner
            row.members, row.engaged, row.plays = facts.members, len(facts.engaged), plays
            row.priority, row.updated_at = facts.priority, at
            row.facts = facts.model_dump(mode="json")
            if left:
                session.execute(
                    delete(AccountMemberRow).where(
                        AccountMemberRow.account_id == facts.account_id,
                        AccountMemberRow.contact_id.in_(list(left)),
                    )
                )
            for contact_id, member in changed.items():
                self._member(session, facts.account_id, contact_id, member)

    @staticmethod
    def _member(session: Session, account_id: str, contact_id: str, member: MemberRecord) -> None:
        row = session.get(AccountMemberRow, contact_id)
        if row is None:
            row = AccountMemberRow(contact_id=contact_id, joined_at=member.joined_at)
            session.add(row)
        elif row.account_id != account_id:
            row.joined_at = member.joined_at  # moved here from another account
        row.account_id, row.role, row.executive = account_id, member.role, member.executive
        row.record = member.model_dump(mode="json")

    def get(self, account_id: str) -> AccountRecord | None:
        """One account with its members, or None."""
        with self._sessions() as session:
            row = session.get(AccountRow, account_id)
            if row is None:
                return None
            query = select(AccountMemberRow).where(AccountMemberRow.account_id == account_id)
            members = {
                m.contact_id: MemberRecord.model_validate(m.record)
                for m in session.scalars(query.order_by(AccountMemberRow.contact_id))
            }
            return AccountRecord(
                facts=AccountFacts.model_validate(row.facts),
                key=row.key,
                plays=row.plays,
                members=members,
                updated_at=row.updated_at,
            )

    def by_domain(self, domain: str) -> str | None:
        """The id of the account with this domain, if one was recorded."""
        with self._sessions() as session:
            query = select(AccountRow.account_id).where(AccountRow.domain == domain)
            return session.scalars(query.limit(1)).first()

    def account_of(self, contact_id: str) -> str | None:
        """The account a contact belongs to, as last recorded."""
        with self._sessions() as session:
            row = session.get(AccountMemberRow, contact_id)
            return row.account_id if row else None

    def all(self, limit: int = 500) -> list[AccountRow]:
        """Accounts, most engaged first, then by name."""
        with self._sessions() as session:
            query = select(AccountRow).order_by(
                AccountRow.engaged.desc(), func.coalesce(AccountRow.name, AccountRow.key)
            )
            rows = list(session.scalars(query.limit(limit)))
            session.expunge_all()
            return rows
