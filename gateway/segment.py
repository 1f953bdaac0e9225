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
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from gateway.profile import group_traits, identify_traits, page_properties
from models.ingest import IncomingEvent

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_EVENT_BYTES",
    "AliasCall",
    "AnyCall",
    "BatchRequest",
    "GroupCall",
    "IdentifyCall",
    "PageCall",
    "ScreenCall",
    "SegmentCall",
    "TrackCall",
    "TrackingResponse",
    "to_incoming",
]

MAX_EVENT_BYTES = 32 * 1024
"""Segment's limit for one call (and for each event of a batch)."""
MAX_BATCH_BYTES = 500 * 1024
"""Segment's limit for one batch request."""

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _iso_string(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 date-time string")
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


IsoTimestamp = Annotated[datetime, BeforeValidator(_iso_string), AfterValidator(_utc)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=255)]
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=120)]
EventName = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
JsonObject = dict[str, Any]


class _Call(BaseModel):
    """Fields every call shares; unknown fields (integrations, sentAt, ...) are ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    message_id: MessageId | None = Field(default=None, alias="messageId")
    user_id: Id | None = Field(default=None, alias="userId")
    anonymous_id: Id | None = Field(default=None, alias="anonymousId")
    timestamp: IsoTimestamp | None = None
    original_timestamp: IsoTimestamp | None = Field(default=None, alias="originalTimestamp")
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
    """``batch`` / ``import``: up to 500 KB of calls, accepted or rejected as a whole."""

    model_config = ConfigDict(extra="ignore")

    batch: list[SegmentCall] = Field(min_length=1)
    context: JsonObject | None = None


class TrackingResponse(BaseModel):
    """The answer to every accepted tracking call: what was stored now, what was known."""

    success: bool = True
    accepted: int = Field(description="events stored by this request")
    duplicates: int = Field(description="events whose messageId was stored before")


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
    call without a timestamp is keyed by when and where in its request it arrived.
    """
    content = call.model_dump(mode="json", exclude={"message_id"})
    if call.timestamp is None and call.original_timestamp is None:
        content["_received"] = [received_at.isoformat(), index]
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode())
    return "gen-" + digest.hexdigest()[:40]


def to_incoming(
    call: AnyCall, received_at: datetime, *, batch_context: JsonObject | None = None, index: int = 0
) -> IncomingEvent:
    """The event the store accepts for one call (``received_at`` is when we got it)."""
    context = {**(batch_context or {}), **(call.context or {})}
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
        timestamp=call.timestamp or call.original_timestamp or received_at,
        received_at=received_at,
    )
