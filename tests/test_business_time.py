"""Business-time arithmetic as an SLA owner sees it: deadlines skip nights, weekends, holidays
and lunch breaks, stay right across DST changes, and measuring undoes adding."""

from __future__ import annotations

import time as wall_clock
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from handoff.business_time import (
    HOLIDAY_YEARS,
    BusinessCalendar,
    add_business_days,
    add_business_time,
    business_time_between,
    is_open,
    next_open,
)
from handoff.public_holidays import holiday_years, public_holiday_dates
from revops.weekdays import WEEKDAYS

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WHIT_MONDAY_2026 = date(2026, 5, 25)


def berlin_calendar(**overrides: object) -> BusinessCalendar:
    fields: dict[str, object] = {
        "name": "emea",
        "timezone": "Europe/Berlin",
        "hours": {"mon-fri": "09:00-17:00"},
        "holidays": [WHIT_MONDAY_2026],
    }
    fields.update(overrides)
    return BusinessCalendar.model_validate(fields)


def berlin(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


MINUTES_15 = timedelta(minutes=15)


# --- deadlines ---------------------------------------------------------------------------------


def test_deadline_within_the_same_working_day() -> None:
    deadline = add_business_time(berlin_calendar(), berlin(2026, 6, 9, 10, 0), MINUTES_15)
    assert deadline == berlin(2026, 6, 9, 10, 15)
    assert deadline.tzinfo is UTC


def test_deadline_late_in_the_day_continues_next_morning() -> None:
    deadline = add_business_time(berlin_calendar(), berlin(2026, 6, 9, 16, 50), MINUTES_15)
    assert deadline == berlin(2026, 6, 10, 9, 5)


def test_one_business_day_from_friday_afternoon_is_monday_afternoon() -> None:
    deadline = add_business_days(berlin_calendar(), berlin(2026, 6, 12, 16, 0), 1)
    assert deadline == berlin(2026, 6, 15, 16, 0)


def test_lead_arriving_at_the_weekend_starts_the_clock_on_monday_morning() -> None:
    deadline = add_business_time(berlin_calendar(), berlin(2026, 6, 13, 11, 0), MINUTES_15)
    assert deadline == berlin(2026, 6, 15, 9, 15)


def test_holiday_monday_in_the_calendar_zone_pushes_a_new_york_lead_to_tuesday() -> None:
    # Friday 16:50 in Berlin is 10:50 in New York; Whit Monday is a holiday in Berlin only.
    arrived = datetime(2026, 5, 22, 10, 50, tzinfo=NEW_YORK)
    assert arrived == berlin(2026, 5, 22, 16, 50)
    deadline = add_business_time(berlin_calendar(), arrived, MINUTES_15)
    assert deadline == berlin(2026, 5, 26, 9, 5)


def test_lunch_break_does_not_count() -> None:
    calendar = berlin_calendar(hours={"mon-fri": ["09:00-12:00", "13:00-17:00"]})
    deadline = add_business_time(calendar, berlin(2026, 6, 9, 11, 30), timedelta(hours=1))
    assert deadline == berlin(2026, 6, 9, 13, 30)


def test_deadline_can_end_exactly_at_closing_time() -> None:
    deadline = add_business_time(berlin_calendar(), berlin(2026, 6, 12, 16, 0), timedelta(hours=1))
    assert deadline == berlin(2026, 6, 12, 17, 0)


def test_business_day_across_spring_forward_keeps_local_time() -> None:
    # Clocks go forward on Sunday 2026-03-29; Monday 16:00 CEST is 14:00 UTC, not 15:00.
    deadline = add_business_days(berlin_calendar(), berlin(2026, 3, 27, 16, 0), 1)
    assert deadline == berlin(2026, 3, 30, 16, 0)
    assert deadline == datetime(2026, 3, 30, 14, 0, tzinfo=UTC)


def test_business_day_across_fall_back_in_new_york_keeps_local_time() -> None:
    calendar = BusinessCalendar(name="amer", timezone="America/New_York")
    start = datetime(2026, 10, 30, 16, 0, tzinfo=NEW_YORK)  # Friday, EDT
    deadline = add_business_days(calendar, start, 1)
    assert deadline == datetime(2026, 11, 2, 16, 0, tzinfo=NEW_YORK)  # Monday, EST
    assert deadline == datetime(2026, 11, 2, 21, 0, tzinfo=UTC)


def test_round_the_clock_calendar_counts_real_hours_on_dst_days() -> None:
    always = berlin_calendar(hours={"mon-sun": "00:00-24:00"}, holidays=[])
    short_day = business_time_between(always, berlin(2026, 3, 29, 0, 0), berlin(2026, 3, 30, 0, 0))
    long_day = business_time_between(always, berlin(2026, 10, 25, 0, 0), berlin(2026, 10, 26, 0, 0))
    assert short_day == timedelta(hours=23)
    assert long_day == timedelta(hours=25)


def test_working_hours_starting_in_a_dst_gap_open_when_the_clock_jumps() -> None:
    # Santiago skips 00:00-01:00 on 2026-09-06; a shift from 00:30 opens at 01:00.
    santiago = ZoneInfo("America/Santiago")
    calendar = BusinessCalendar(
        name="cl", timezone="America/Santiago", hours={"sun": "00:30-02:00"}
    )
    opening = next_open(calendar, datetime(2026, 9, 5, 12, 0, tzinfo=santiago))
    assert opening == datetime(2026, 9, 6, 1, 0, tzinfo=santiago)
    assert business_time_between(calendar, opening, opening + timedelta(hours=3)) == timedelta(
        hours=1
    )


def test_sunday_to_thursday_week() -> None:
    calendar = BusinessCalendar(name="me", timezone="Asia/Dubai", hours={"sun-thu": "08:00-16:00"})
    friday = datetime(2026, 6, 12, 10, 0, tzinfo=ZoneInfo("Asia/Dubai"))
    assert not is_open(calendar, friday)
    assert next_open(calendar, friday) == datetime(2026, 6, 14, 8, 0, tzinfo=ZoneInfo("Asia/Dubai"))


def test_business_day_length_follows_the_usual_working_day() -> None:
    short_friday = berlin_calendar(hours={"mon-thu": "09:00-17:00", "fri": "09:00-13:00"})
    assert short_friday.business_day_length() == timedelta(hours=8)
    assert berlin_calendar(business_day="7.5h").business_day_length() == timedelta(hours=7.5)


def test_zero_duration_is_the_start_itself() -> None:
    saturday = berlin(2026, 6, 13, 11, 0)
    assert add_business_time(berlin_calendar(), saturday, timedelta(0)) == saturday


def test_many_deadlines_are_cheap_to_compute() -> None:
    calendar = berlin_calendar()
    start = berlin(2026, 6, 12, 16, 0)
    began = wall_clock.perf_counter()
    for _ in range(1000):
        add_business_days(calendar, start, 1)
    assert wall_clock.perf_counter() - began < 2.0
    a_year_later = add_business_days(calendar, start, 250)
    assert business_time_between(calendar, start, a_year_later) == timedelta(hours=8 * 250)


# --- open / next open -------------------------------------------------------------------------


def test_open_from_the_first_minute_and_closed_at_closing_time() -> None:
    calendar = berlin_calendar()
    assert is_open(calendar, berlin(2026, 6, 9, 9, 0))
    assert not is_open(calendar, berlin(2026, 6, 9, 17, 0))
    assert not is_open(calendar, berlin(2026, 5, 25, 10, 0))  # holiday


def test_next_open_skips_the_night_the_weekend_and_the_holiday() -> None:
    calendar = berlin_calendar()
    assert next_open(calendar, berlin(2026, 5, 22, 17, 0)) == berlin(2026, 5, 26, 9, 0)
    during = berlin(2026, 6, 9, 10, 0)
    assert next_open(calendar, during) == during


def test_measuring_backwards_gives_a_negative_duration() -> None:
    calendar = berlin_calendar()
    a, b = berlin(2026, 6, 9, 10, 0), berlin(2026, 6, 10, 10, 0)
    assert business_time_between(calendar, b, a) == -timedelta(hours=8)


# --- refused input ----------------------------------------------------------------------------


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add_business_time(berlin_calendar(), datetime(2026, 6, 9, 10, 0), MINUTES_15)


def test_negative_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        add_business_time(berlin_calendar(), berlin(2026, 6, 9, 10, 0), -MINUTES_15)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"timezone": "Europe/Berlinn"}, "unknown IANA time zone"),
        ({"hours": {"mon": ["09:00-13:00", "12:00-17:00"]}}, "overlap"),
        ({"hours": {"mon": "17:00-09:00"}}, "ends before it starts"),
        ({"hours": {"mon-fri": "closed"}}, "at least one weekday"),
        ({"hours": {"monday": "09:00-17:00"}}, "unknown weekday"),
        ({"hours": {"mon-fri": "09:00-17:00", "fri": "09:00-12:00"}}, "more than once"),
    ],
)
def test_invalid_calendars_are_refused_with_a_reason(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        berlin_calendar(**overrides)


def test_calendar_survives_a_json_round_trip() -> None:
    calendar = berlin_calendar(hours={"mon-fri": ["00:00-12:00", "13:00-24:00"]})
    assert BusinessCalendar.model_validate_json(calendar.model_dump_json()) == calendar


# --- public holidays from a country ---------------------------------------------------------

THANKSGIVING_2030 = date(2030, 11, 28)


def us_calendar(years: range = range(2029, 2032), **fields: object) -> BusinessCalendar:
    data = {"name": "amer", "timezone": "America/New_York", "country": "US", **fields}
    return BusinessCalendar.model_validate(data, context={HOLIDAY_YEARS: years})


def test_a_us_calendar_skips_thanksgiving_2030() -> None:
    wednesday_late = datetime(2030, 11, 27, 16, 50, tzinfo=NEW_YORK)
    deadline = add_business_time(us_calendar(), wednesday_late, MINUTES_15)
    assert deadline == datetime(2030, 11, 29, 9, 5, tzinfo=NEW_YORK)
    assert not is_open(us_calendar(), datetime(2030, 11, 28, 11, 0, tzinfo=NEW_YORK))


def test_excepted_holidays_are_worked_and_company_closures_still_close() -> None:
    columbus_2030 = datetime(2030, 10, 14, 11, 0, tzinfo=NEW_YORK)
    christmas_eve = date(2030, 12, 24)
    calendar = us_calendar(except_holidays=["Columbus Day"], holidays=[christmas_eve])
    assert is_open(calendar, columbus_2030) and not is_open(us_calendar(), columbus_2030)
    assert THANKSGIVING_2030 in calendar.public_holidays
    assert not is_open(calendar, datetime(2030, 12, 24, 11, 0, tzinfo=NEW_YORK))


def test_an_observed_holiday_goes_with_its_name() -> None:
    # 4 July 2027 is a Sunday: the US observes it on Monday the 5th.
    dates = public_holiday_dates("US", None, range(2027, 2028))
    assert {date(2027, 7, 4), date(2027, 7, 5)} <= dates
    worked = public_holiday_dates("US", None, range(2027, 2028), ["Independence Day"])
    assert not {date(2027, 7, 4), date(2027, 7, 5)} & worked


def test_the_expanded_dates_travel_with_the_calendar_and_are_not_expanded_again() -> None:
    far = us_calendar(years=range(2040, 2041))
    again = BusinessCalendar.model_validate_json(far.model_dump_json())
    assert again == far
    assert {day.year for day in again.public_holidays} == {2040}


def test_without_a_span_the_years_around_today_are_expanded() -> None:
    today = datetime.now(UTC).date()
    calendar = BusinessCalendar(name="amer", timezone="America/New_York", country="US")
    assert {day.year for day in calendar.public_holidays} == set(holiday_years(today))
    assert holiday_years(date(2026, 12, 5)) == range(2025, 2032)


@settings(deadline=None, max_examples=40)
@given(
    country=st.sampled_from(["US", "DE", "GB", "AU", "JP", "FR"]),
    first=st.integers(2000, 2080),
    span=st.integers(1, 8),
)
def test_expansion_is_pure_given_a_year_span(country: str, first: int, span: int) -> None:
    years = range(first, first + span)
    dates = public_holiday_dates(country, None, years)
    assert dates == public_holiday_dates(country, None, years)
    assert {day.year for day in dates} == set(years)
    by_year = [public_holiday_dates(country, None, range(year, year + 1)) for year in years]
    assert dates == frozenset().union(*by_year)


# --- properties -------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
]


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@st.composite
def day_ranges(draw: st.DrawFn) -> list[str]:
    points = sorted(draw(st.lists(st.integers(0, 1440), unique=True, max_size=4)))
    pairs = zip(points[::2], points[1::2], strict=False)
    return [f"{_clock(start)}-{_clock(end)}" for start, end in pairs]


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    hours = {day: draw(day_ranges()) for day in WEEKDAYS}
    if not any(hours.values()):
        hours["wed"] = ["10:00-11:00"]
    holidays = draw(st.frozensets(st.dates(date(2026, 1, 1), date(2026, 12, 31)), max_size=30))
    return BusinessCalendar(
        name="generated",
        timezone=draw(st.sampled_from(ZONES)),
        hours=hours,
        holidays=holidays,
    )


instants = st.datetimes(
    min_value=datetime(2025, 12, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=60))


@settings(deadline=None, max_examples=150)
@given(calendar=calendars(), start=instants, duration=durations)
def test_measuring_a_deadline_gives_back_the_duration_added(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    deadline = add_business_time(calendar, start, duration)
    assert deadline >= start
    assert business_time_between(calendar, start, deadline) == duration


@settings(deadline=None, max_examples=150)
@given(calendar=calendars(), a=instants, b=instants)
def test_adding_the_measured_time_reaches_b_or_the_last_closing_before_it(
    calendar: BusinessCalendar, a: datetime, b: datetime
) -> None:
    a, b = min(a, b), max(a, b)
    measured = business_time_between(calendar, a, b)
    reached = add_business_time(calendar, a, measured)
    assert reached <= b
    assert business_time_between(calendar, reached, b) == timedelta(0)
    if is_open(calendar, b):
        assert reached == b


@settings(deadline=None, max_examples=100)
@given(calendar=calendars(), start=instants, first=durations, second=durations)
def test_adding_in_two_steps_equals_adding_once(
    calendar: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    once = add_business_time(calendar, start, first + second)
    twice = add_business_time(calendar, add_business_time(calendar, start, first), second)
    assert once == twice
