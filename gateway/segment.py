"""The Segment HTTP tracking API's calls as pydantic models, and their mapping to IncomingEvent.

This module owns what a valid call is (ids, type-specific fields, ISO-8601 timestamps, lengths
the store can hold) and how each call type becomes the behaviour a contact workflow counts:
``track`` keeps its event name, ``page`` becomes "<name> Page Viewed", ``identify`` and
``group`` carry profile traits. Keeping the mapping here means the store and the workflows only
ever see one event shape, whichever client or SDK sent it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from gateway.profile import group_traits, identify_traits, page_properties
from models.ingest import IncomingEvent
from revops.metrics import EVENTS_CLAMPED

__all__ = [
    "DEFAULT_FUTURE_MARGIN",
    "MAX_BATCH_BYTES",
    "MAX_EVENT_BYTES",
    "AliasCall",
    "AnyCall",
    "BatchRequest",
    "GroupCall",
    "IdentifyCall",
    "PageCall",
    "RejectedCall",
    "ScreenCall",
    "SegmentCall",
    "TrackCall",
    "TrackingResponse",
    "batch_sent_at",
    "call_adapter",
    "event_time",
    "to_incoming",
]

MAX_EVENT_BYTES = 32 * 1024
"""Segment's limit for one call (and for each event of a batch)."""
MAX_BATCH_BYTES = 500 * 1024
"""Segment's limit for one batch request."""

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _moment(value: object) -> object:
    """An ISO-8601 string, or epoch milliseconds (some mobile and browser clients send those)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError("is out of range") from exc
    raise ValueError("must be an ISO-8601 date-time string or epoch milliseconds")


def _id_text(value: object) -> object:
    """Numeric ids are text (``userId: 42`` is user "42"), as Segment stores them."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _utc(value: datetime) -> datetime:
    """Naive times are UTC; out-of-range times are refused (they would break ordering)."""
    try:
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("is out of range") from exc
    if not _EARLIEST <= moment < _LATEST:
        raise ValueError("must be between 1970 and 2200")
    return moment


IsoTimestamp = Annotated[datetime, BeforeValidator(_moment), AfterValidator(_utc)]
Id = Annotated[str, BeforeValidator(_id_text), StringConstraints(min_length=1, max_length=255)]
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=120)]
EventName = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
JsonObject = dict[str, Any]


class _Call(BaseModel):
    """Fields every call shares; unknown fields (integrations, _metadata, ...) are ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    message_id: MessageId | None = Field(default=None, alias="messageId")
    user_id: Id | None = Field(default=None, alias="userId")
    anonymous_id: Id | None = Field(default=None, alias="anonymousId")
    timestamp: IsoTimestamp | None = None
    original_timestamp: IsoTimestamp | None = Field(default=None, alias="originalTimestamp")
    sent_at: IsoTimestamp | None = Field(
        default=None,
        alias="sentAt",
        description="when the client sent the call, by its own clock (corrects its skew)",
    )
    context: JsonObject | None = None

    @model_validator(mode="after")
    def _has_an_id(self) -> _Call:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("userId or anonymousId is required")
        return self


class TrackCall(_Call):
    """``track``: a behaviour with a name (``event``) and properties."""

    type: Literal["track"] = "track"
    event: EventName
    properties: JsonObject | None = None


class IdentifyCall(_Call):
    """``identify``: who the user is; traits update the contact's profile."""

    type: Literal["identify"] = "identify"
    traits: JsonObject | None = None


class PageCall(_Call):
    """``page``: a web page view; counted as "<name> Page Viewed" (or "Page Viewed")."""

    type: Literal["page"] = "page"
    name: EventName | None = None
    category: EventName | None = None
    properties: JsonObject | None = None


class ScreenCall(_Call):
    """``screen``: a mobile screen view; counted as "<name> Screen Viewed"."""

    type: Literal["screen"] = "screen"
    name: EventName | None = None
    category: EventName | None = None
    properties: JsonObject | None = None


class GroupCall(_Call):
    """``group``: links the contact to an account (``groupId``) with company traits."""

    type: Literal["group"] = "group"
    group_id: Id = Field(alias="groupId")
    traits: JsonObject | None = None


class AliasCall(_Call):
    """``alias``: ``previousId`` and ``userId`` are the same person from now on."""

    type: Literal["alias"] = "alias"
    previous_id: Id = Field(alias="previousId")
    user_id: Id = Field(alias="userId")


AnyCall = TrackCall | IdentifyCall | PageCall | ScreenCall | GroupCall | AliasCall
SegmentCall = Annotated[AnyCall, Field(discriminator="type")]


class BatchRequest(BaseModel):
    """``batch`` / ``import``: up to 500 KB of calls, each accepted or rejected on its own.

    The calls are validated one by one (``call_adapter``), so one bad call cannot cost the
    others: Segment's SDKs treat a 400 as final and would drop the whole batch.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    batch: list[Any] = Field(
        min_length=1,
        description="Segment calls (track, identify, page, screen, group, alias)",
        json_schema_extra={"items": {"type": "object"}},
    )
    context: JsonObject | None = None
    sent_at: Any = Field(
        default=None,
        alias="sentAt",
        description="when the client sent the batch, by its own clock (corrects its skew; "
        "an unreadable one is ignored)",
    )


call_adapter: TypeAdapter[AnyCall] = TypeAdapter(SegmentCall)
"""Validates one call of a batch (the ``type`` field picks its model)."""


class RejectedCall(BaseModel):
    """A call of a batch that was not stored, and why (it is kept in the dead-letter table)."""

    index: int = Field(description="position of the call in the batch")
    code: str
    field: str | None = Field(default=None, description="the field at fault, e.g. batch[3].event")
    message: str


class TrackingResponse(BaseModel):
    """The answer to every accepted tracking call: what was stored now, what was known."""

    success: bool = True
    accepted: int = Field(description="events stored by this request")
    duplicates: int = Field(description="events whose messageId was stored before")
    rejected: list[RejectedCall] = Field(
        default_factory=list, description="calls of a batch that were refused (not stored)"
    )


def _behaviour_name(call: AnyCall) -> str:
    if isinstance(call, TrackCall):
        return call.event
    if isinstance(call, PageCall):
        return f"{call.name} Page Viewed" if call.name else "Page Viewed"
    if isinstance(call, ScreenCall):
        return f"{call.name} Screen Viewed" if call.name else "Screen Viewed"
    return call.type.capitalize()


def _properties(call: AnyCall, context: JsonObject) -> JsonObject:
    if isinstance(call, PageCall | ScreenCall):
        return page_properties(call.properties or {}, context, call.category)
    if isinstance(call, TrackCall):
        return call.properties or {}
    if isinstance(call, GroupCall):
        return {"group_traits": call.traits} if call.traits else {}
    return {}


def _traits(call: AnyCall, context: JsonObject) -> JsonObject:
    if isinstance(call, IdentifyCall):
        return identify_traits(call.traits or {}, context)
    if isinstance(call, GroupCall):
        return group_traits(call.traits or {})
    return {}


def _generated_message_id(call: AnyCall, received_at: datetime, index: int) -> str:
    """A messageId for a call sent without one, derived from its content.

    A retried call that carries its own timestamp gets the same id (and is stored once); a
    call without a timestamp is keyed by when and where in its request it arrived. ``sentAt``
    is left out: a retry is sent again, later.
    """
    content = call.model_dump(mode="json", exclude={"message_id", "sent_at"})
    if call.timestamp is None and call.original_timestamp is None:
        content["_received"] = [received_at.isoformat(), index]
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode())
    return "gen-" + digest.hexdigest()[:40]


DEFAULT_FUTURE_MARGIN = timedelta(minutes=10)
"""How far past its arrival an event's (corrected) time may lie before it is clamped."""
_sent_at_adapter: TypeAdapter[datetime] = TypeAdapter(IsoTimestamp)


def batch_sent_at(value: object) -> datetime | None:
    """A batch's ``sentAt``, or None when it is missing or unreadable (then nothing is
    corrected: a bad sentAt must not cost the batch its calls)."""
    if value is None:
        return None
    try:
        return _sent_at_adapter.validate_python(value)
    except ValueError:
        return None


def event_time(
    timestamp: datetime | None,
    sent_at: datetime | None,
    received_at: datetime,
    *,
    future_margin: timedelta = DEFAULT_FUTURE_MARGIN,
) -> tuple[datetime, bool]:
    """When the event happened, by our clock, and whether it had to be clamped.

    Segment's clock-skew correction: the client's own clock times both the event and the
    send, so ``received_at - (sent_at - timestamp)`` is the event's time on the server's
    clock, however wrong the device's clock is. Without ``sentAt`` the timestamp stands as
    sent. A time still more than ``future_margin`` ahead of its arrival (a timestamp in 2150)
    would drive score decay and list windows from the future: it becomes ``received_at``,
    flagged. A correction that would land before 1970 is not applied.
    """
    if timestamp is None:
        return received_at, False
    moment = timestamp
    if sent_at is not None:
        try:
            corrected = received_at - (sent_at - timestamp)
        except OverflowError:
            corrected = timestamp
        moment = corrected if corrected >= _EARLIEST else timestamp
    if moment > received_at + future_margin:
        return received_at, True
    return moment, False


def to_incoming(
    call: AnyCall,
    received_at: datetime,
    *,
    batch_context: JsonObject | None = None,
    index: int = 0,
    sent_at: datetime | None = None,
    future_margin: timedelta = DEFAULT_FUTURE_MARGIN,
) -> IncomingEvent:
    """The event the store accepts for one call (``received_at`` is when we got it;
    ``sent_at`` is the batch's, used when the call has none of its own)."""
    context = {**(batch_context or {}), **(call.context or {})}
    original = call.timestamp or call.original_timestamp
    timestamp, clamped = event_time(
        original, call.sent_at or sent_at, received_at, future_margin=future_margin
    )
    if clamped and original is not None:
        EVENTS_CLAMPED.inc()
        context["revops"] = {
            **_object(context.get("revops")),
            "clamped_timestamp": original.isoformat(),
        }
    return IncomingEvent(
        message_id=call.message_id or _generated_message_id(call, received_at, index),
        type=call.type,
        name=_behaviour_name(call),
        user_id=call.user_id,
        anonymous_id=call.anonymous_id,
        previous_id=call.previous_id if isinstance(call, AliasCall) else None,
        group_id=call.group_id if isinstance(call, GroupCall) else None,
        properties=_properties(call, context),
        traits=_traits(call, context),
        context=context,
        timestamp=timestamp,
        received_at=received_at,
    )


def _object(value: object) -> JsonObject:
    return value if isinstance(value, dict) else {}
