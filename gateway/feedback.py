"""Email feedback becomes the product's events: one path for tracked clicks and opens and for
every provider's event webhook.

A piece of feedback names its send by our Message-ID (or the provider's own id, learnt from an
earlier event that carried both), is recorded as an observation of that send
(``store.engagement``, once per provider event id) and, unless a machine made it, becomes an
event through the normal ingest path (``Store.accept``) with a message id derived from the
send, so each send yields each event once however often it is reported:

| feedback | event | message id per | properties |
|---|---|---|---|
| delivered | Email Delivered | send | journey, step, variant |
| opened | Email Opened | send (the first human open; later ones are counted) | same |
| clicked | Email Clicked | send and link | same + url (no query string) |
| bounced | Email Bounced | send and bounce type | same + bounce_type, suppress |
| complained | Spam Complaint | send | same |
| unsubscribed | Unsubscribed | send | same + source |

A hard bounce or a complaint suppresses marketing to the contact at once: the send-time check
and the send path read these events from the store. A soft bounce suppresses only when it is
the ``soft_bounce_limit``-th in a row (no delivery, open or click between): its event then
says ``suppress: true``. An unsubscribe also sets the stored consent at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select

from models.ingest import AcceptResult, IncomingEvent
from revops.ids import short_hash
from store.engagement import (
    EngagementBook,
    EngagementKind,
    Observation,
    SentEmail,
    bare_message_id,
)
from store.journeys import JourneyLog
from store.repo import Store
from store.schema import ContactRow

__all__ = ["EVENT_NAMES", "Feedback", "FeedbackResult", "apply_feedback", "link_without_query"]

EVENT_NAMES: dict[EngagementKind, str] = {
    "delivered": "Email Delivered",
    "opened": "Email Opened",
    "clicked": "Email Clicked",
    "bounced": "Email Bounced",
    "complained": "Spam Complaint",
    "unsubscribed": "Unsubscribed",
}
"""Feedback kind -> the event name scoring, lists, policies and journeys already read."""


@dataclass(frozen=True)
class Feedback:
    """One thing a provider or our tracking saw about one sent email."""

    kind: EngagementKind
    source: str
    at: datetime
    message_id: str | None = None
    provider_message_id: str | None = None
    event_id: str | None = None
    bounce_type: Literal["hard", "soft"] | None = None
    url: str | None = None
    machine: bool = False


@dataclass
class FeedbackResult:
    """What became of a batch of feedback."""

    matched: int = 0
    unknown: int = 0
    duplicates: int = 0
    events: int = 0
    contact_ids: list[str] = field(default_factory=list)


def link_without_query(url: str) -> str:
    """A clicked link as events carry it: no query string or fragment (they may hold
    personal data a template put there)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def apply_feedback(
    store: Store, items: Sequence[Feedback], *, soft_bounce_limit: int
) -> FeedbackResult:
    """Record ``items`` and accept the events they mean (synchronous: call in a thread).

    A batch costs a few queries whatever its size (sends, known provider events, user ids,
    one insert of observations, one accept): tracked clicks arrive in batches.
    """
    book = EngagementBook(store)
    result = FeedbackResult()
    found = _sends(book, items)
    known = book.seen([f"{i.source}:{i.event_id}" for i in items if i.event_id])
    fresh: list[tuple[Feedback, SentEmail]] = []
    for item, sent in zip(items, found, strict=True):
        dedupe = f"{item.source}:{item.event_id}" if item.event_id else None
        if sent is None:
            result.unknown += 1
        elif dedupe is not None and dedupe in known:
            result.duplicates += 1
        else:
            result.matched += 1
            if dedupe is not None:
                known.add(dedupe)
            fresh.append((item, sent))
    book.record([_observation(item, sent) for item, sent in fresh])
    people = [(item, sent) for item, sent in fresh if not item.machine]
    users = _user_ids(store, {sent.contact_id for _, sent in people})
    events = []
    for item, sent in people:
        user_id = users.get(sent.contact_id)
        if user_id is None:
            continue
        events.append(_event(item, sent, user_id, book, soft_bounce_limit))
        if item.kind == "unsubscribed":
            JourneyLog(store).unsubscribe(sent.contact_id, item.at)
    if events:
        accepted: AcceptResult = store.accept(events)
        result.events = accepted.accepted
        result.contact_ids = accepted.contact_ids
    return result


def _sends(book: EngagementBook, items: Sequence[Feedback]) -> list[SentEmail | None]:
    """Each item's send: by Message-ID in one query, else by the provider's id."""
    by_id = book.find_many([i.message_id for i in items if i.message_id])
    found: list[SentEmail | None] = []
    for item in items:
        sent = by_id.get(bare_message_id(item.message_id)) if item.message_id else None
        if sent is not None and item.provider_message_id:
            book.remember_provider_id(sent.send_id, item.provider_message_id)
        if sent is None and item.provider_message_id:
            sent = book.find(provider_message_id=item.provider_message_id)
        found.append(sent)
    return found


def _observation(item: Feedback, sent: SentEmail) -> Observation:
    return Observation(
        send_id=sent.send_id,
        contact_id=sent.contact_id,
        kind=item.kind,
        source=item.source,
        at=item.at,
        dedupe=f"{item.source}:{item.event_id}" if item.event_id else None,
        machine=item.machine,
        url=item.url,
        detail=item.bounce_type or "",
    )


def _user_ids(store: Store, contact_ids: set[str]) -> dict[str, str]:
    """The user id of each contact (of the one it was merged into), few queries."""
    found: dict[str, str] = {}
    with store._sessions() as session:
        query = select(ContactRow.contact_id, ContactRow.user_id, ContactRow.merged_into)
        rows = session.execute(query.where(ContactRow.contact_id.in_(sorted(contact_ids))))
        merged = []
        for contact_id, user_id, merged_into in rows:
            if merged_into is None and user_id is not None:
                found[contact_id] = user_id
            else:
                merged.append(contact_id)
    for contact_id in merged:
        user_id = store.user_id_of(contact_id)
        if user_id is not None:
            found[contact_id] = user_id
    return found


def _event(
    item: Feedback, sent: SentEmail, user_id: str, book: EngagementBook, soft_limit: int
) -> IncomingEvent:
    properties: dict[str, Any] = {
        "journey": sent.journey,
        "step": sent.step,
        "variant": sent.variant,
        "channel": "email",
        "message_id": sent.message_id.strip("<>"),
        "source": item.source,
    }
    parts = [sent.message_id]
    if item.kind == "clicked" and item.url:
        properties["url"] = link_without_query(item.url)
        parts.append(properties["url"])
    if item.kind == "bounced":
        bounce_type = item.bounce_type or "hard"
        properties["bounce_type"] = bounce_type
        parts.append(bounce_type)
        in_a_row = book.soft_bounces_in_a_row(sent.contact_id) if bounce_type == "soft" else 0
        properties["suppress"] = bounce_type == "hard" or in_a_row >= soft_limit
        if bounce_type == "soft":
            properties["soft_bounces_in_a_row"] = in_a_row
    return IncomingEvent(
        message_id=f"email-{item.kind}-{short_hash(*parts)}",
        type="track",
        name=EVENT_NAMES[item.kind],
        user_id=user_id,
        properties=properties,
        timestamp=item.at,
        received_at=datetime.now(UTC),
    )
