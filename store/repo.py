"""The store's repository: the only code that reads and writes the tables.

``accept`` is the durable half of ingestion: in one transaction it stores each new event once
(unique messageId), resolves who it belongs to, and queues it in the outbox for the contact's
workflow. Identity resolution lives here because it must be atomic with the insert: an
anonymous visitor's earlier events join the known contact the moment identify/alias links them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from models.contact import PERSONAL_TRAITS, StageEntry
from models.events import ContactEvent
from models.ingest import AcceptResult, IncomingEvent
from revops.errors import StoreUnavailable
from revops.ids import contact_id_for
from store.db import create_store_engine, migrate, session_factory
from store.schema import (
    Base,
    ContactRow,
    EventRow,
    IdentityRow,
    OutboxRow,
    StageHistoryRow,
)

__all__ = ["OutboxItem", "Store", "public_traits"]

USER = "user_id"
ANONYMOUS = "anonymous_id"


def _now() -> datetime:
    return datetime.now(UTC)


def public_traits(traits: dict[str, Any]) -> dict[str, Any]:
    """Traits without personal data; an email is replaced by its domain (for scoring)."""
    kept = {k: v for k, v in traits.items() if k not in PERSONAL_TRAITS}
    email = traits.get("email")
    if isinstance(email, str) and "@" in email:
        kept["email_domain"] = email.rsplit("@", 1)[1].lower()
    return kept


@dataclass(frozen=True)
class OutboxItem:
    """One queued delivery: the outbox row id and the event in workflow form."""

    outbox_id: int
    contact_id: str
    event: ContactEvent


class Store:
    """Repository over one engine; safe to share across threads (a session per call)."""

    def __init__(self, engine: Engine, *, id_secret: str) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)
        self._id_secret = id_secret

    @classmethod
    def open(cls, url: str, *, id_secret: str, run_migrations: bool = True) -> Store:
        """Connect to ``url`` and (by default) migrate the schema to the newest revision."""
        engine = create_store_engine(url)
        if run_migrations:
            migrate(engine)
        return cls(engine, id_secret=id_secret)

    def contact_id_for(self, user_id: str) -> str:
        """The opaque contact id a new user id gets."""
        return contact_id_for(user_id, self._id_secret)

    # ---- ingestion -------------------------------------------------------------------------

    def accept(self, events: Sequence[IncomingEvent]) -> AcceptResult:
        """Store new events once, resolve identities, queue deliveries; all or nothing.

        Raises ``StoreUnavailable`` when the database cannot be reached.
        """
        for attempt in range(3):
            try:
                with self._sessions.begin() as session:
                    return _Acceptor(session, self).run(events)
            except IntegrityError:
                # A concurrent accept stored one of these messageIds first: the next pass
                # sees it as a duplicate.
                if attempt == 2:
                    raise
            except OperationalError as exc:
                raise StoreUnavailable(f"store unreachable: {exc.orig}") from exc
        raise AssertionError("unreachable")

    def pending(self, *, limit: int = 1000, contact_id: str | None = None) -> list[OutboxItem]:
        """Undelivered outbox items in delivery order (oldest first)."""
        query = (
            select(OutboxRow.id, OutboxRow.contact_id, EventRow)
            .join(EventRow, EventRow.id == OutboxRow.event_id)
            .where(OutboxRow.delivered_at.is_(None))
            .order_by(OutboxRow.id)
            .limit(limit)
        )
        if contact_id is not None:
            query = query.where(OutboxRow.contact_id == contact_id)
        with self._sessions() as session:
            rows = session.execute(query).all()
        return [OutboxItem(r[0], r[1], _contact_event(r[2])) for r in rows]

    def mark_delivered(self, outbox_ids: Iterable[int]) -> None:
        """Record that these items reached their workflows."""
        ids = list(outbox_ids)
        if not ids:
            return
        with self._sessions.begin() as session:
            session.execute(
                update(OutboxRow).where(OutboxRow.id.in_(ids)).values(delivered_at=_now())
            )

    def mark_failed(self, outbox_ids: Iterable[int], error: str) -> None:
        """Count a failed delivery attempt; the items stay pending."""
        ids = list(outbox_ids)
        if not ids:
            return
        with self._sessions.begin() as session:
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(ids))
                .values(attempts=OutboxRow.attempts + 1, last_error=error[:500])
            )

    # ---- what workflows decide -------------------------------------------------------------

    def record_stage_entries(self, contact_id: str, entries: Sequence[StageEntry]) -> int:
        """Insert stage entries not yet recorded; returns how many were new (idempotent)."""
        rows = [
            {
                "contact_id": contact_id,
                "stage": e.stage.value,
                "entered_at": e.at,
                "reason": e.reason,
                "override": e.override,
            }
            for e in entries
        ]
        with self._sessions.begin() as session:
            added = insert_ignore(session, StageHistoryRow, rows)
            if entries:
                session.execute(
                    update(ContactRow)
                    .where(ContactRow.contact_id == contact_id)
                    .values(stage=entries[-1].stage.value, updated_at=_now())
                )
        return added

    # ---- reads ------------------------------------------------------------------------------

    def resolve(self, user_id: str) -> str | None:
        """The contact id a user id (or anonymous id) belongs to, or None."""
        with self._sessions() as session:
            return session.scalar(
                select(IdentityRow.contact_id).where(IdentityRow.value == user_id).limit(1)
            )

    def contact(self, contact_id: str) -> ContactRow | None:
        """The contact's row, or None."""
        with self._sessions() as session:
            return session.get(ContactRow, contact_id)

    def stage_history(self, contact_id: str) -> list[StageHistoryRow]:
        """Recorded stage entries, oldest first."""
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(StageHistoryRow)
                    .where(StageHistoryRow.contact_id == contact_id)
                    .order_by(StageHistoryRow.entered_at, StageHistoryRow.id)
                )
            )

    def row_counts(self) -> dict[str, int]:
        """Rows per table, for health checks and tests that prove nothing was stored."""
        with self._sessions() as session:
            return {
                table.name: session.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
            }


def insert_ignore(session: Session, table: type[Base], rows: list[dict[str, Any]]) -> int:
    """INSERT rows, skipping those that hit a unique constraint; returns rows inserted."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    key = list(sa_inspect(table).primary_key)
    statement = insert(table).values(rows).on_conflict_do_nothing().returning(*key)
    return len(session.execute(statement).all())


def _contact_event(row: EventRow) -> ContactEvent:
    return ContactEvent(
        message_id=row.message_id,
        kind=row.type,
        name=row.name,
        timestamp=_aware(row.timestamp),
        received_at=_aware(row.received_at),
        properties={k: v for k, v in row.properties.items() if k not in PERSONAL_TRAITS},
        traits=public_traits(row.traits),
        account_id=row.context.get("group_id") if row.type == "group" else None,
    )


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class _Acceptor:
    """One accept transaction: dedupe, resolve identities, insert, queue."""

    def __init__(self, session: Session, store: Store) -> None:
        self.session = session
        self.store = store
        self.result = AcceptResult()
        self.touched: dict[str, None] = {}

    def run(self, events: Sequence[IncomingEvent]) -> AcceptResult:
        ids = [e.message_id for e in events]
        seen = set(
            self.session.scalars(select(EventRow.message_id).where(EventRow.message_id.in_(ids)))
        )
        for event in events:
            if event.message_id in seen:
                self.result.duplicates += 1
                continue
            seen.add(event.message_id)
            self._accept_one(event)
        self.result.contact_ids = list(self.touched)
        return self.result

    def _accept_one(self, event: IncomingEvent) -> None:
        contact_id = self._resolve(event)
        row = EventRow(
            message_id=event.message_id,
            type=event.type,
            name=event.name,
            user_id=event.user_id,
            anonymous_id=event.anonymous_id,
            contact_id=contact_id,
            properties=event.properties,
            traits=event.traits,
            context={**event.context, "group_id": event.group_id}
            if event.group_id
            else event.context,
            timestamp=event.timestamp,
            received_at=event.received_at,
        )
        self.session.add(row)
        self.session.flush()
        self.result.accepted += 1
        if contact_id is None:
            self.result.anonymous += 1
            return
        self._update_profile(contact_id, event)
        self._queue(contact_id, [row.id])

    def _queue(self, contact_id: str, event_ids: list[int]) -> None:
        now = _now()
        for event_id in event_ids:
            self.session.add(OutboxRow(event_id=event_id, contact_id=contact_id, created_at=now))
        self.session.flush()
        self.touched[contact_id] = None

    def _identity(self, value: str) -> str | None:
        return self.session.scalar(
            select(IdentityRow.contact_id).where(IdentityRow.value == value).limit(1)
        )

    def _resolve(self, event: IncomingEvent) -> str | None:
        if event.user_id is None:
            return self._identity(event.anonymous_id) if event.anonymous_id else None
        contact_id = self._identity(event.user_id) or self._create_contact(event.user_id)
        for other in (event.anonymous_id, event.previous_id):
            if other and other != event.user_id:
                self._link(other, contact_id)
        return contact_id

    def _create_contact(self, user_id: str) -> str:
        contact_id = self.store.contact_id_for(user_id)
        now = _now()
        self.session.add(
            ContactRow(
                contact_id=contact_id,
                user_id=user_id,
                traits={},
                consent={},
                created_at=now,
                updated_at=now,
            )
        )
        self.session.add(
            IdentityRow(kind=USER, value=user_id, contact_id=contact_id, created_at=now)
        )
        self.session.flush()
        return contact_id

    def _link(self, other_id: str, contact_id: str) -> None:
        """Attach ``other_id`` (anonymous id or an older user id) and its history to the contact."""
        owner = self._identity(other_id)
        if owner == contact_id:
            return
        if owner is None:
            self.session.add(
                IdentityRow(
                    kind=ANONYMOUS, value=other_id, contact_id=contact_id, created_at=_now()
                )
            )
            orphan_filter: ColumnElement[bool] = EventRow.contact_id.is_(None) & (
                (EventRow.anonymous_id == other_id) | (EventRow.user_id == other_id)
            )
        else:
            self._merge(owner, contact_id)
            orphan_filter = EventRow.contact_id == owner
        event_ids = list(
            self.session.scalars(
                select(EventRow.id).where(orphan_filter).order_by(EventRow.timestamp, EventRow.id)
            )
        )
        if event_ids:
            self.session.execute(
                update(EventRow).where(EventRow.id.in_(event_ids)).values(contact_id=contact_id)
            )
            self.session.execute(
                update(OutboxRow)
                .where(OutboxRow.event_id.in_(event_ids))
                .values(contact_id=contact_id, delivered_at=None)
            )
            queued = set(
                self.session.scalars(
                    select(OutboxRow.event_id).where(OutboxRow.event_id.in_(event_ids))
                )
            )
            self._queue(contact_id, [i for i in event_ids if i not in queued])

    def _merge(self, old_contact: str, new_contact: str) -> None:
        """Alias of two known contacts: the old one's ids now resolve to the new one."""
        self.session.execute(
            update(IdentityRow)
            .where(IdentityRow.contact_id == old_contact)
            .values(contact_id=new_contact)
        )
        self.session.execute(
            update(ContactRow)
            .where(ContactRow.contact_id == old_contact)
            .values(merged_into=new_contact, updated_at=_now())
        )

    def _update_profile(self, contact_id: str, event: IncomingEvent) -> None:
        if not event.traits and not event.group_id:
            return
        contact = self.session.get(ContactRow, contact_id)
        if contact is None:
            return
        if event.traits:
            contact.traits = {**contact.traits, **event.traits}
            email = event.traits.get("email")
            if isinstance(email, str):
                contact.email = email
        if event.group_id:
            contact.account_id = event.group_id
        contact.updated_at = _now()
