"""The store's repository: the only code that reads and writes the tables.

``accept`` is the durable half of ingestion: in one transaction it stores each new event once
(unique messageId), resolves who it belongs to, and queues it in the outbox for the contact's
workflow. Identity resolution lives here because it must be atomic with the insert: an
anonymous visitor's earlier events join the known contact the moment identify/alias links them
(the transaction itself, and its rules, are ``store/accept.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from contacts.contract import PERSONAL_TRAITS
from lifecycle.stages import StageEntry
from models.events import ContactEvent
from models.ingest import AcceptResult, IncomingEvent
from revops.errors import StoreUnavailable
from revops.ids import contact_id_for
from store.accept import ANONYMOUS, MERGE_NOTICE, USER, Acceptor, StaleResolution
from store.db import create_store_engine, migrate, session_factory, wait_for_schema
from store.funnel import rebuild_funnel
from store.privacy import ERASED_ID_PURPOSE, keyed_hash
from store.schema import (
    Base,
    ContactRow,
    EventRow,
    IdentityRow,
    OutboxRow,
    StageHistoryRow,
)

__all__ = ["OutboxItem", "Store", "public_traits"]

_ACCEPT_ATTEMPTS = 5
_DEADLOCK = "40P01"
_IN_CHUNK = 1000
"""Ids per ``IN (...)`` list: well under every driver's bound-parameter limit."""


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
    merged_into: str | None = None
    """Set on a merge notice: the contact this one was merged into (its workflow stops)."""


class Store:
    """Repository over one engine; safe to share across threads (a session per call)."""

    def __init__(self, engine: Engine, *, id_secret: str) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)
        self._id_secret = id_secret

    @classmethod
    def open(
        cls,
        url: str,
        *,
        id_secret: str,
        run_migrations: bool = True,
        schema_wait: float = 0.0,
    ) -> Store:
        """Connect to ``url`` with the schema at this code's revision.

        By default migrate it there (under the migration lock, so concurrent callers are
        safe). With ``run_migrations=False`` never change it: wait up to ``schema_wait``
        seconds for another process (``revops migrate``) to, else raise ``SchemaNotReady``.
        """
        engine = create_store_engine(url)
        try:
            if run_migrations:
                migrate(engine)
            else:
                wait_for_schema(engine, schema_wait)
        except StoreUnavailable:
            engine.dispose()
            raise
        return cls(engine, id_secret=id_secret)

    def contact_id_for(self, user_id: str) -> str:
        """The opaque contact id a new user id gets."""
        return contact_id_for(user_id, self._id_secret)

    def _erased_id(self, value: str) -> str:
        return keyed_hash(self._id_secret, ERASED_ID_PURPOSE, value)

    # ---- ingestion -------------------------------------------------------------------------

    def accept(
        self, events: Sequence[IncomingEvent], *, urgent: frozenset[str] = frozenset()
    ) -> AcceptResult:
        """Store new events once, resolve identities, queue deliveries; all or nothing.

        Track events named in ``urgent`` (hand-raisers) list their contacts in the result's
        ``urgent_contact_ids``, for the relay to deliver first. Raises ``StoreUnavailable``
        when the database cannot be reached.
        """
        for attempt in range(_ACCEPT_ATTEMPTS):
            last = attempt == _ACCEPT_ATTEMPTS - 1
            try:
                with self._sessions.begin() as session:
                    acceptor = Acceptor(session, self.contact_id_for, urgent, self._erased_id)
                    return acceptor.run(events)
            except (IntegrityError, StaleResolution):
                # A concurrent accept stored one of these messageIds first (the next pass
                # sees it as a duplicate), or merged a contact this one resolved to.
                if last:
                    raise
            except OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) == _DEADLOCK and not last:
                    continue  # PostgreSQL chose this accept to break a lock cycle: again
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
        return [OutboxItem(r[0], r[1], _contact_event(r[2]), _merged_into(r[2])) for r in rows]

    def backlog(
        self,
        *,
        scan: int = 2000,
        limit: int = 20000,
        shards: Collection[int] | None = None,
        shard_count: int = 1,
    ) -> list[OutboxItem]:
        """All pending items of the contacts owning the oldest ``scan`` ones, oldest first.

        The relay's read: taking each contact's whole backlog (not just its share of the
        oldest rows) lets one signal carry everything a contact has waiting. Per-contact order
        holds because every item is returned in id order; ``limit`` bounds one read. With
        ``shards``, only contacts whose ``bucket % shard_count`` is one of them (the relay's
        shards; a contact's items are all in one shard).
        """
        oldest = (
            select(OutboxRow.contact_id)
            .where(OutboxRow.delivered_at.is_(None))
            .order_by(OutboxRow.id)
            .limit(scan)
        )
        if shards is not None:
            oldest = oldest.where((OutboxRow.bucket % shard_count).in_(sorted(shards)))
        with self._sessions() as session:
            contacts = sorted(set(session.scalars(oldest)))
            rows: list[Any] = []
            for start in range(0, len(contacts), _IN_CHUNK):
                chunk = contacts[start : start + _IN_CHUNK]
                query = (
                    select(OutboxRow.id, OutboxRow.contact_id, EventRow)
                    .join(EventRow, EventRow.id == OutboxRow.event_id)
                    .where(OutboxRow.delivered_at.is_(None), OutboxRow.contact_id.in_(chunk))
                    .order_by(OutboxRow.id)
                    .limit(limit)
                )
                rows += session.execute(query).all()
        rows.sort(key=lambda r: r[0])
        return [
            OutboxItem(r[0], r[1], _contact_event(r[2]), _merged_into(r[2])) for r in rows[:limit]
        ]

    def pending_count(self) -> int:
        """How many outbox items wait for delivery (readiness and benchmarks report it)."""
        query = select(func.count()).select_from(OutboxRow).where(OutboxRow.delivered_at.is_(None))
        with self._sessions() as session:
            return session.scalar(query) or 0

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        try:
            with self.engine.connect() as connection:
                connection.execute(select(1))
        except OperationalError as exc:
            raise StoreUnavailable(f"store unreachable: {exc.orig}") from exc

    def mark_delivered(self, outbox_ids: Iterable[int]) -> None:
        """Record that these items reached their workflows."""
        ids = list(outbox_ids)
        if not ids:
            return
        now = _now()
        with self._sessions.begin() as session:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                session.execute(
                    update(OutboxRow).where(OutboxRow.id.in_(chunk)).values(delivered_at=now)
                )

    def mark_failed(self, outbox_ids: Iterable[int], error: str) -> None:
        """Count a failed delivery attempt; the items stay pending."""
        ids = list(outbox_ids)
        if not ids:
            return
        with self._sessions.begin() as session:
            for start in range(0, len(ids), _IN_CHUNK):
                session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id.in_(ids[start : start + _IN_CHUNK]))
                    .values(attempts=OutboxRow.attempts + 1, last_error=error[:500])
                )

    # ---- what workflows decide -------------------------------------------------------------

    def record_stage_entries(self, contact_id: str, entries: Sequence[StageEntry]) -> int:
        """Insert stage entries not yet recorded; returns how many were new (idempotent).

        The contact's funnel summary (``store.funnel``) is rebuilt in the same transaction.
        """
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
            if added:
                rebuild_funnel(session, [contact_id])
        return added

    # ---- reads ------------------------------------------------------------------------------

    def resolve(self, user_id: str) -> str | None:
        """The contact id a user id (or anonymous id) belongs to, or None."""
        query = (
            select(IdentityRow.contact_id)
            .where(IdentityRow.kind.in_((USER, ANONYMOUS)), IdentityRow.value == user_id)
            .limit(1)
        )
        with self._sessions() as session:
            return session.scalar(query)

    def user_id_of(self, contact_id: str) -> str | None:
        """The user id of a contact (of the one it was merged into, if so), or None."""
        with self._sessions() as session:
            row = session.get(ContactRow, contact_id)
            for _ in range(10):
                if row is None or row.merged_into is None:
                    break
                row = session.get(ContactRow, row.merged_into)
            return row.user_id if row is not None else None

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


def _merged_into(row: EventRow) -> str | None:
    if row.type != "alias" or row.name != MERGE_NOTICE:
        return None
    target = row.properties.get("merged_into")
    return target if isinstance(target, str) else None


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
