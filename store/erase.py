"""Erasing a person from every table, and the repository the erasure runs through.

Every table that names a contact (a ``contact_id`` column) is visited, so a table added later
is erased too without a change here (``tests/test_privacy.py`` scans every column of every
table to prove it). Rows are deleted, except in the tables that feed aggregate reports
(``PSEUDONYMISED``): there the contact id becomes a random token that nothing else holds and
free text is cleared, so funnel counts, attribution and journey statistics keep the person as
an anonymous unit. A full rebuild of a report summary drops them (their source rows are gone).
Events are also found by the user id and anonymous ids themselves (an anonymous page view
that never joined the contact still names the visitor).
"""

from __future__ import annotations

import importlib
import pkgutil
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, Table, cast, delete, literal, or_, select, update
from sqlalchemy.orm import Session

import store
from store.accept import ANONYMOUS, USER
from store.privacy import (
    ERASED_ID_PURPOSE,
    ErasureTicket,
    complete_erasure,
    erased_id_hashes,
    erasure_of,
    keyed_hash,
    normalise_address,
    record_erasure,
    suppressed,
)
from store.repo import Store
from store.report_extract import OpportunityRow
from store.schema import Base, ContactRow, EventRow, IdentityRow, OutboxRow

__all__ = ["PSEUDONYMISED", "Privacy", "Subject", "erase_rows", "load_every_table"]

PSEUDONYMISED = frozenset(
    {
        "report_spells",
        "report_passes",
        "report_touchpoints",
        "report_email_events",
        "report_sales_events",
        "report_opportunity_contacts",
        "report_contacts",
        "journey_assignments",
        "journey_conversions",
    }
)
"""Tables of aggregate reports: kept under a random token instead of the contact id."""

_CLEARED = {"report_sales_events": ("reason",)}
"""Free text that may name the person, cleared in pseudonymised rows."""

_ADDRESS_PURPOSE = "suppressed-address"
_SUBJECT_PURPOSE = "erasure-subject"


@dataclass
class Subject:
    """Everything that identifies one person in the store: found before any row goes."""

    user_id: str
    contact_ids: list[str]
    ids: list[str] = field(default_factory=list)
    """User ids and anonymous ids linked to the contacts."""
    addresses: list[tuple[str, str]] = field(default_factory=list)
    """``(kind, value)``: emails and phone numbers on file."""


def load_every_table() -> None:
    """Import every module of the store, so each table is in ``Base.metadata``: a table
    added later is erased and exported without a change here."""
    for module in pkgutil.iter_modules(store.__path__):
        if module.name != "migrations":
            importlib.import_module(f"store.{module.name}")


def _pseudonym() -> str:
    return "x" + secrets.token_hex(15)


def _pseudonymise(session: Session, table: Table, contact_id: str) -> int:
    token = _pseudonym()
    values: dict[str, Any] = {"contact_id": token}
    if "enrollment_id" in table.c:
        values["enrollment_id"] = literal(f"{token}-") + cast(table.c.id, String)
    for column in _CLEARED.get(table.name, ()):
        values[column] = None
    result = session.execute(update(table).where(table.c.contact_id == contact_id).values(values))
    return int(getattr(result, "rowcount", 0) or 0)


def erase_rows(session: Session, subject: Subject) -> dict[str, int]:
    """Delete (or pseudonymise) every row of the subject; rows touched per table."""
    load_every_table()
    ids = subject.contact_ids
    counts: dict[str, int] = {}
    for table in reversed(Base.metadata.sorted_tables):
        if "contact_id" not in table.c or not ids:
            continue
        if table.name in PSEUDONYMISED:
            touched = sum(_pseudonymise(session, table, c) for c in ids)
        else:
            condition = table.c.contact_id.in_(ids)
            if table.name == "events" and subject.ids:
                condition = or_(
                    condition,
                    EventRow.user_id.in_(subject.ids),
                    EventRow.anonymous_id.in_(subject.ids),
                )
            result = session.execute(delete(table).where(condition))
            touched = int(getattr(result, "rowcount", 0) or 0)
        if touched:
            counts[table.name] = touched
    opportunities = OpportunityRow
    for contact_id in ids:
        result = session.execute(
            update(opportunities)
            .where(opportunities.primary_contact == contact_id)
            .values(primary_contact=_pseudonym())
        )
        if touched := int(getattr(result, "rowcount", 0) or 0):
            counts["report_opportunities"] = counts.get("report_opportunities", 0) + touched
    return counts


class Privacy:
    """Erasure and suppression over one store (hashes keyed by the installation's secret)."""

    def __init__(self, store: Store) -> None:
        self._sessions = store._sessions
        self._secret = store._id_secret

    # ---- hashes ---------------------------------------------------------------------------

    def subject_hash(self, user_id: str) -> str:
        """The hash an erasure record is kept under."""
        return keyed_hash(self._secret, _SUBJECT_PURPOSE, user_id)

    def id_hash(self, value: str) -> str:
        """The hash a refused user id or anonymous id is kept under."""
        return keyed_hash(self._secret, ERASED_ID_PURPOSE, value)

    def address_hash(self, kind: str, value: str) -> str:
        """The hash a suppressed address is kept under."""
        return keyed_hash(self._secret, _ADDRESS_PURPOSE, normalise_address(kind, value))

    # ---- reads ----------------------------------------------------------------------------

    def find(self, user_id: str) -> Subject | None:
        """The person behind ``user_id`` (their contact and every one merged into it)."""
        with self._sessions() as session:
            first = session.scalar(
                select(IdentityRow.contact_id).where(
                    IdentityRow.kind.in_((USER, ANONYMOUS)), IdentityRow.value == user_id
                )
            )
            if first is None:
                return None
            root = session.get(ContactRow, first)
            top = root.merged_into if root is not None and root.merged_into else first
            contact_ids = {top}
            frontier = [top]
            while frontier:
                merged = session.scalars(
                    select(ContactRow.contact_id).where(ContactRow.merged_into.in_(frontier))
                ).all()
                frontier = [c for c in merged if c not in contact_ids]
                contact_ids.update(frontier)
            return self._subject(session, user_id, sorted(contact_ids))

    def _subject(self, session: Session, user_id: str, contact_ids: list[str]) -> Subject:
        values = session.scalars(
            select(IdentityRow.value).where(IdentityRow.contact_id.in_(contact_ids))
        ).all()
        addresses: set[tuple[str, str]] = set()
        rows = select(ContactRow).where(ContactRow.contact_id.in_(contact_ids))
        for row in session.scalars(rows):
            traits = row.traits or {}
            for kind, value in (("email", row.email), ("email", traits.get("email"))):
                if isinstance(value, str) and value.strip():
                    addresses.add((kind, value))
            phone = traits.get("phone")
            if isinstance(phone, str) and phone.strip():
                addresses.add(("phone", phone))
        ids = sorted({user_id, *values})
        return Subject(user_id, contact_ids, ids, sorted(addresses))

    def erasure(self, user_id: str) -> ErasureTicket | None:
        """The record of an erasure of ``user_id``, or None."""
        with self._sessions() as session:
            return erasure_of(session, self.subject_hash(user_id))

    def address_suppressed(self, kind: str, value: str) -> bool:
        """The address belongs to an erased person: never send to it."""
        with self._sessions() as session:
            return suppressed(session, self.address_hash(kind, value))

    # ---- the erasure ------------------------------------------------------------------------

    def begin(self, subject: Subject, *, erased_by: str, reason: str) -> ErasureTicket:
        """Record the erasure and stop deliveries: from this commit on, the person's events
        are refused at accept and nothing waits in the outbox for their workflows."""
        with self._sessions.begin() as session:
            ticket = record_erasure(
                session,
                self.subject_hash(subject.user_id),
                erased_by=erased_by,
                reason=reason,
                id_hashes=[self.id_hash(v) for v in subject.ids],
                addresses=[(k, self.address_hash(k, v)) for k, v in subject.addresses],
            )
            if subject.contact_ids:
                session.execute(
                    delete(OutboxRow).where(OutboxRow.contact_id.in_(subject.contact_ids))
                )
            return ticket

    def erase(self, subject: Subject) -> dict[str, int]:
        """Remove the subject's rows in one transaction; rows touched per table."""
        with self._sessions.begin() as session:
            return erase_rows(session, subject)

    def complete(
        self, subject: Subject, rows: dict[str, int], workflows: int
    ) -> ErasureTicket | None:
        """Add this pass's counts to the record, stamped complete."""
        subject_hash = self.subject_hash(subject.user_id)
        with self._sessions.begin() as session:
            complete_erasure(session, subject_hash, rows, workflows, len(subject.contact_ids))
        with self._sessions() as session:
            return erasure_of(session, subject_hash)

    def erased_ids(self, values: Sequence[str]) -> set[str]:
        """Those of ``values`` (user or anonymous ids) that were erased."""
        by_hash = {self.id_hash(v): v for v in values}
        with self._sessions() as session:
            return {by_hash[h] for h in erased_id_hashes(session, by_hash)}
