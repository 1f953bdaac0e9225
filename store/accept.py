"""One accept transaction: dedupe, identity resolution, profile updates and the outbox.

This is the durable half of ingestion and it must be atomic: an event is stored once (unique
messageId), attributed to the right contact, and queued for that contact's workflow, or
nothing happens. Identity resolution lives here for the same reason: an anonymous visitor's
earlier events join the known contact in the same transaction that links the ids.

It is also the gateway's hot path, so it works in bulk: one query to drop known messageIds,
one to resolve every id in the request, and multi-row inserts for contacts, identities, events
and outbox rows. Only a new link (identify/alias of an anonymous id, a merge) writes early,
because the events it adopts must be in the table to be found.

Rules:
- ``identify``/any call with a userId and an anonymousId links the anonymous id to the
  contact when it is unowned; an anonymous id already owned by another contact stays there (a
  shared browser must not merge two people).
- ``alias`` (previousId -> userId) attaches a new userId to the previous id's contact, or,
  when both are known contacts, merges the previous one into the user's: its ids, its history
  (re-queued for the surviving workflow) and a "Contact Merged" notice for its own workflow.
- Adopted history fills profile gaps only; what the contact said since wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Row, delete, insert, select, text, update
from sqlalchemy.orm import Session

from models.contact import Consent
from models.ingest import AcceptResult, IncomingEvent
from revops.consent import says_something, update_consent
from revops.ids import short_hash
from store.schema import ContactRow, EventRow, IdentityRow, OutboxRow

__all__ = ["ANONYMOUS", "MERGE_NOTICE", "USER", "Acceptor"]

USER = "user_id"
ANONYMOUS = "anonymous_id"
MERGE_NOTICE = "Contact Merged"
"""Name of the event queued for a contact merged into another (its workflow then stops)."""

_CHUNK = 1000
_ADOPTED = (
    EventRow.id,
    EventRow.anonymous_id,
    EventRow.type,
    EventRow.name,
    EventRow.traits,
    EventRow.properties,
    EventRow.context,
    EventRow.timestamp,
)
_PG_ACCEPT_LOCK = "hashtext(current_schema() || '.revops-accept')"
T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _chunks(values: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


@dataclass
class _Fact:
    """What one event says about its contact's profile."""

    name: str
    at: datetime
    traits: dict[str, Any]
    properties: dict[str, Any]
    account_id: str | None


@dataclass
class _Profile:
    """Profile changes collected for one contact during the transaction."""

    traits: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    account_id: str | None = None
    default_account_id: str | None = None
    consent_facts: list[_Fact] = field(default_factory=list)

    def absorb(self, fact: _Fact, *, adopted: bool) -> None:
        (self.defaults if adopted else self.traits).update(fact.traits)
        if fact.account_id and adopted:
            self.default_account_id = fact.account_id
        elif fact.account_id:
            self.account_id = fact.account_id
        if says_something(fact.name, fact.properties, fact.traits):
            self.consent_facts.append(fact)

    def apply(self, row: ContactRow, now: datetime) -> None:
        traits = {**self.defaults, **row.traits, **self.traits}
        row.traits = traits
        email = traits.get("email")
        row.email = email if isinstance(email, str) else row.email
        row.account_id = self.account_id or row.account_id or self.default_account_id
        if self.consent_facts:
            consent = Consent.model_validate(row.consent or {})
            for fact in sorted(self.consent_facts, key=lambda f: f.at):
                update_consent(consent, fact.name, fact.properties, fact.traits, fact.at)
            row.consent = consent.model_dump(mode="json")
        row.updated_at = now


def _fact_of_row(row: Mapping[Any, Any]) -> _Fact | None:
    """What a stored (or buffered) event row says about the profile."""
    account = row["context"].get("group_id") if row["type"] == "group" else None
    if not (row["traits"] or account) and not says_something(
        row["name"], row["properties"], row["traits"]
    ):
        return None
    at = _aware(row["timestamp"])
    return _Fact(row["name"], at, row["traits"], row["properties"], account)


def _fact_of(event: IncomingEvent) -> _Fact | None:
    if not (event.traits or event.group_id) and not says_something(
        event.name, event.properties, event.traits
    ):
        return None
    return _Fact(event.name, event.timestamp, event.traits, event.properties, event.group_id)


class Acceptor:
    """Runs one accept inside ``session``'s transaction; ``contact_id_for`` names new contacts."""

    def __init__(
        self,
        session: Session,
        contact_id_for: Callable[[str], str],
        urgent: frozenset[str] = frozenset(),
    ) -> None:
        self.session = session
        self.contact_id_for = contact_id_for
        self.urgent = urgent
        self.urgent_touched: dict[str, None] = {}
        self.now = _now()
        self.result = AcceptResult()
        self.identities: dict[str, str] = {}
        self.new_contacts: list[dict[str, Any]] = []
        self.new_identities: list[dict[str, Any]] = []
        self.rows: list[tuple[dict[str, Any], str | None]] = []
        self.profiles: dict[str, _Profile] = {}
        self.touched: dict[str, None] = {}
        self.adoptions: dict[str, str] = {}

    def run(self, events: Sequence[IncomingEvent]) -> AcceptResult:
        """Accept ``events`` (in order); the caller commits."""
        self._serialize()
        fresh = self._fresh(events)
        self._prefetch(fresh)
        for event in fresh:
            self._accept_one(event)
        self._flush()
        self._save_profiles()
        self.result.contact_ids = list(self.touched)
        self.result.urgent_contact_ids = list(self.urgent_touched)
        return self.result

    def _serialize(self) -> None:
        """Take the store-wide accept lock for this transaction.

        Identity resolution reads, then writes: without the lock an anonymous page view and
        the identify linking its visitor could commit in either order and the view would stay
        orphaned, or an event could land on a contact an alias is merging away. Accepts are
        short (one bulk insert per request), so running them one at a time costs little and
        makes every rule above hold across threads and processes.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text(f"SELECT pg_advisory_xact_lock({_PG_ACCEPT_LOCK})"))
        else:
            self.session.execute(text("BEGIN IMMEDIATE"))  # SQLite: take the write lock now

    # ---- dedupe and lookups ----------------------------------------------------------------

    def _fresh(self, events: Sequence[IncomingEvent]) -> list[IncomingEvent]:
        ids = list(dict.fromkeys(e.message_id for e in events))
        seen: set[str] = set()
        for chunk in _chunks(ids):
            query = select(EventRow.message_id).where(EventRow.message_id.in_(chunk))
            seen.update(self.session.scalars(query))
        fresh = []
        for event in events:
            if event.message_id in seen:
                self.result.duplicates += 1
                continue
            seen.add(event.message_id)
            fresh.append(event)
        return fresh

    def _prefetch(self, events: Sequence[IncomingEvent]) -> None:
        values = {
            value
            for e in events
            for value in (e.user_id, e.anonymous_id, e.previous_id)
            if value is not None
        }
        for chunk in _chunks(sorted(values)):
            query = select(IdentityRow.value, IdentityRow.contact_id).where(
                IdentityRow.kind.in_((USER, ANONYMOUS)), IdentityRow.value.in_(chunk)
            )
            self.identities.update(
                {value: contact for value, contact in self.session.execute(query)}
            )

    # ---- one event ---------------------------------------------------------------------------

    def _accept_one(self, event: IncomingEvent) -> None:
        contact_id = self._resolve(event)
        self.rows.append((self._event_row(event, contact_id), contact_id))
        self.result.accepted += 1
        if contact_id is None:
            self.result.anonymous += 1
            return
        self.touched[contact_id] = None
        if event.type == "track" and event.name in self.urgent:
            self.urgent_touched[contact_id] = None
        fact = _fact_of(event)
        if fact is not None:
            self._absorb(contact_id, fact, adopted=False)

    def _absorb(self, contact_id: str, fact: _Fact | None, *, adopted: bool) -> None:
        if fact is not None:
            self.profiles.setdefault(contact_id, _Profile()).absorb(fact, adopted=adopted)

    def _event_row(self, event: IncomingEvent, contact_id: str | None) -> dict[str, Any]:
        context = {**event.context, "group_id": event.group_id} if event.group_id else event.context
        return {
            "message_id": event.message_id,
            "type": event.type,
            "name": event.name,
            "user_id": event.user_id,
            "anonymous_id": event.anonymous_id,
            "contact_id": contact_id,
            "properties": event.properties,
            "traits": event.traits,
            "context": context,
            "timestamp": event.timestamp,
            "received_at": event.received_at,
        }

    def _resolve(self, event: IncomingEvent) -> str | None:
        if event.user_id is None:
            return self.identities.get(event.anonymous_id or "")
        contact_id = self.identities.get(event.user_id)
        previous = event.previous_id if event.type == "alias" else None
        if contact_id is None and previous and previous in self.identities:
            contact_id = self.identities[previous]
            self._add_identity(USER, event.user_id, contact_id)
        if contact_id is None:
            contact_id = self._create_contact(event.user_id)
        if event.anonymous_id and event.anonymous_id != event.user_id:
            self._link(event.anonymous_id, contact_id, merge=False, cause=event)
        if previous and previous != event.user_id:
            self._link(previous, contact_id, merge=True, cause=event)
        return contact_id

    # ---- identities ------------------------------------------------------------------------

    def _add_identity(self, kind: str, value: str, contact_id: str) -> None:
        self.new_identities.append(
            {"kind": kind, "value": value, "contact_id": contact_id, "created_at": self.now}
        )
        self.identities[value] = contact_id

    def _create_contact(self, user_id: str) -> str:
        contact_id = self.contact_id_for(user_id)
        self.new_contacts.append(
            {
                "contact_id": contact_id,
                "user_id": user_id,
                "email": None,
                "traits": {},
                "account_id": None,
                "consent": {},
                "stage": None,
                "merged_into": None,
                "created_at": self.now,
                "updated_at": self.now,
            }
        )
        self._add_identity(USER, user_id, contact_id)
        return contact_id

    def _link(self, other_id: str, contact_id: str, *, merge: bool, cause: IncomingEvent) -> None:
        """Attach ``other_id`` and its history to the contact (or merge its owner, for alias)."""
        owner = self.identities.get(other_id)
        if owner == contact_id or (owner is not None and not merge):
            return
        if owner is None:
            self._add_identity(ANONYMOUS, other_id, contact_id)
            self._adopt_buffered(other_id, contact_id)
            self.adoptions[other_id] = contact_id  # its stored events: at the next flush
            return
        self._flush()
        self._merge(owner, contact_id, cause)

    def _adopt_buffered(self, anonymous_id: str, contact_id: str) -> None:
        """This request's earlier events of the visitor join the contact (not written yet)."""
        for index, (row, owner) in enumerate(self.rows):
            if owner is None and row["anonymous_id"] == anonymous_id:
                row["contact_id"] = contact_id
                self.rows[index] = (row, contact_id)
                self.result.anonymous -= 1
                self._absorb(contact_id, _fact_of_row(row), adopted=True)

    def _adopt_stored(self) -> None:
        """Stored events of the anonymous ids linked since the last flush join their contacts."""
        adoptions, self.adoptions = self.adoptions, {}
        found: list[Row[Any]] = []
        for chunk in _chunks(sorted(adoptions)):
            query = select(*_ADOPTED).where(
                EventRow.contact_id.is_(None), EventRow.anonymous_id.in_(chunk)
            )
            found += self.session.execute(query).all()
        found.sort(key=lambda r: (_aware(r.timestamp), r.id))
        self._adopt([(row, adoptions[row.anonymous_id]) for row in found])

    def _merge(self, old: str, new: str, cause: IncomingEvent) -> None:
        """Alias of two known contacts: everything of ``old`` now belongs to ``new``."""
        session = self.session
        session.execute(
            update(IdentityRow).where(IdentityRow.contact_id == old).values(contact_id=new)
        )
        session.execute(
            update(ContactRow)
            .where((ContactRow.contact_id == old) | (ContactRow.merged_into == old))
            .values(merged_into=new, updated_at=self.now)
        )
        self.identities = {k: new if v == old else v for k, v in self.identities.items()}
        history = select(*_ADOPTED).where(EventRow.contact_id == old)
        found = session.execute(history.order_by(EventRow.timestamp, EventRow.id)).all()
        self._adopt([(row, new) for row in found])
        notice = IncomingEvent(
            message_id=f"merge-{short_hash(cause.message_id, old)}",
            type="alias",
            name=MERGE_NOTICE,
            properties={"merged_into": new},
            timestamp=cause.timestamp,
            received_at=cause.received_at,
        )
        self.rows.append((self._event_row(notice, old), old))
        self.touched[old] = None

    def _adopt(self, adopted: list[tuple[Row[Any], str]]) -> None:
        """Give stored events to contacts and queue them again, in the order given."""
        if not adopted:
            return
        self.session.execute(
            update(EventRow), [{"id": row.id, "contact_id": c} for row, c in adopted]
        )
        for chunk in _chunks([row.id for row, _ in adopted]):
            self.session.execute(delete(OutboxRow).where(OutboxRow.event_id.in_(chunk)))
        self._queue([(row.id, contact_id) for row, contact_id in adopted])
        for row, contact_id in adopted:
            self._absorb(contact_id, _fact_of_row(row._mapping), adopted=True)
            self.touched[contact_id] = None

    # ---- writing ------------------------------------------------------------------------------

    def _queue(self, pairs: list[tuple[int, str]]) -> None:
        rows = [
            {"event_id": event_id, "contact_id": contact_id, "created_at": self.now, "attempts": 0}
            for event_id, contact_id in pairs
        ]
        if rows:
            self.session.execute(insert(OutboxRow), rows)

    def _flush(self) -> None:
        """Write what is buffered: contacts, identities, events, then their outbox rows."""
        if self.new_contacts:
            self.session.execute(insert(ContactRow), self.new_contacts)
            self.new_contacts = []
        if self.new_identities:
            self.session.execute(insert(IdentityRow), self.new_identities)
            self.new_identities = []
        if self.adoptions:
            self._adopt_stored()  # before this request's rows: history first, oldest first
        if not self.rows:
            return
        statement = insert(EventRow).returning(EventRow.id, sort_by_parameter_order=True)
        ids = self.session.scalars(statement, [row for row, _ in self.rows]).all()
        self._queue(
            [
                (event_id, c)
                for event_id, (_, c) in zip(ids, self.rows, strict=True)
                if c is not None
            ]
        )
        self.rows = []

    def _save_profiles(self) -> None:
        if not self.profiles:
            return
        query = select(ContactRow).where(ContactRow.contact_id.in_(list(self.profiles)))
        for row in self.session.scalars(query):
            self.profiles[row.contact_id].apply(row, self.now)
