"""Event time: Segment's clock-skew correction with ``sentAt``, and future timestamps clamped.

The rule (``gateway.segment.event_time``) is property-tested on its own; then a phone whose
clock is three hours fast and a client that claims the year 2150 post through the real gateway
and the contact workflow, and the stored and applied times are checked.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from gateway.segment import event_time
from revops.settings import Settings
from store.repo import Store
from store.schema import EventRow
from tests.gateway_support import basic_auth, serve_gateway, state_after
from tests.support import handle_for, running_worker

MARGIN = timedelta(minutes=10)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2199, 12, 31), timezones=st.just(UTC)
)
arrivals = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
offsets = st.timedeltas(min_value=timedelta(days=-3650), max_value=timedelta(days=3650))


@given(timestamp=st.none() | moments, sent=st.none() | moments, received=arrivals)
def test_an_event_is_never_timed_in_the_future_nor_before_1970(
    timestamp: datetime | None, sent: datetime | None, received: datetime
) -> None:
    moment, clamped = event_time(timestamp, sent, received, future_margin=MARGIN)
    assert EARLIEST <= moment <= received + MARGIN
    if clamped or timestamp is None:
        assert moment == received
    elif sent is None:
        assert moment == timestamp
    elif received - (sent - timestamp) >= EARLIEST:
        assert moment == received - (sent - timestamp)  # Segment's formula


@given(lag=st.timedeltas(timedelta(0), timedelta(days=30)), received=arrivals, skew=offsets)
def test_a_device_clock_that_is_off_does_not_move_its_events(
    lag: timedelta, received: datetime, skew: timedelta
) -> None:
    """An event ``lag`` before the send is timed ``lag`` before arrival, whatever the skew."""
    truth = received - timedelta(milliseconds=150)  # when the device really sent it
    device_sent = truth + skew
    device_timestamp = device_sent - lag
    moment, clamped = event_time(device_timestamp, device_sent, received, future_margin=MARGIN)
    assert not clamped and moment == received - lag


def _call(user_id: str, event: str, timestamp: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user_id,
        "event": event,
        "messageId": str(uuid.uuid4()),
        "timestamp": timestamp.isoformat(),
        **fields,
    }


def _rows(store: Store) -> dict[str, EventRow]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(EventRow)).all()
    return {row.name: row for row in rows}  # type: ignore[misc]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def test_a_fast_phone_clock_is_corrected_and_the_year_2150_is_clamped(
    env: WorkflowEnvironment, store: Store, settings: Settings
) -> None:
    now = datetime.now(UTC)
    phone = now + timedelta(hours=3)  # the phone's clock is three hours fast
    batch = {
        "batch": [
            _call("skew-1", "Signed Up", phone - timedelta(minutes=2)),
            _call("skew-1", "Webinar Registered", phone - timedelta(seconds=30)),
        ],
        "sentAt": phone.isoformat(),
    }
    async with (
        running_worker(env.client, store, settings) as relay,
        serve_gateway(settings, store, relay) as url,
        httpx.AsyncClient(base_url=url, headers=basic_auth()) as http,
    ):
        skewed = await http.post("/v1/b", json=batch)
        future = await http.post(
            "/v1/track", json=_call("skew-1", "Pricing Viewed", datetime(2150, 1, 1, tzinfo=UTC))
        )
        near = await http.post(
            "/v1/t", json=_call("skew-1", "Docs Viewed", now + timedelta(minutes=5))
        )
        state = await state_after(handle_for(env.client, store, "skew-1"), 4)
    assert [a.status_code for a in (skewed, future, near)] == [200, 200, 200]
    rows = _rows(store)
    signed_up = rows["Signed Up"]
    gap = _utc(signed_up.received_at) - _utc(signed_up.timestamp)
    assert timedelta(minutes=2) <= gap < timedelta(minutes=2, seconds=5)
    registered = rows["Webinar Registered"]
    assert _utc(registered.timestamp) - _utc(signed_up.timestamp) == timedelta(seconds=90)
    pricing = rows["Pricing Viewed"]
    assert _utc(pricing.timestamp) == _utc(pricing.received_at)
    assert pricing.context["revops"]["clamped_timestamp"].startswith("2150-01-01")
    docs = rows["Docs Viewed"]  # within the 10-minute margin: kept as sent, not flagged
    assert _utc(docs.timestamp) == now + timedelta(minutes=5) and "revops" not in docs.context
    assert state.last_event_at is not None
    assert state.last_event_at <= datetime.now(UTC) + timedelta(minutes=10)
