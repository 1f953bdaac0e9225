"""Business-time calendars: working hours per weekday in one IANA time zone, plus holidays.

SLA deadlines ("first touch within 15 business minutes", "within 1 business day") are measured
in working time of the team that owns the lead, not in wall-clock time. The handoff workflow
computes those deadlines and sleeps until them, so everything here is pure and deterministic:
no clock (callers pass the instants), no I/O beyond zoneinfo's tz database, no global state.

How it works: each local date of a calendar expands into a few UTC intervals (its working
ranges, converted with the calendar's time zone, so DST changes move them correctly). Every
operation walks those intervals day by day, so the cost grows with the number of days spanned,
not with minutes, and the arithmetic is exact to the microsecond.

Instants in and out are timezone-aware; results are in UTC.

Holidays are dates: the explicit ``holidays`` of a calendar and, when it names a ``country``,
that country's public holidays, expanded to dates by :mod:`handoff.public_holidays` when the
definition is validated (a loaded calendar travels to workflows with its dates, and validating
that payload again expands nothing).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from handoff.public_holidays import CalendarFieldError, holiday_years, public_holiday_dates
from revops.durations import WORKING_DAY, to_timedelta
from revops.strict import StrictModel
from revops.weekdays import WEEKDAYS, Weekday

__all__ = [
    "HOLIDAY_YEARS",
    "BusinessCalendar",
    "CountryCode",
    "TimeRange",
    "TimeZoneName",
    "add_business_days",
    "add_business_time",
    "as_utc",
    "business_time_between",
    "is_open",
    "next_open",
]

_DAY_INDEX: dict[str, int] = {name: index for index, name in enumerate(WEEKDAYS)}
_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)

Interval = tuple[datetime, datetime]
"""An open stretch of working time, ``[opens, closes)`` in UTC."""
_END_OF_DAY = "24:00"


def _check_timezone(name: str) -> str:
    """Accept only names the tz database knows, so a typo fails at load time, not at routing."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r} (e.g. 'Europe/Berlin')") from exc
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
"""A string that must name an IANA time zone, such as ``America/New_York``."""


def _not_a_yaml_boolean(value: Any) -> Any:
    """YAML 1.1 reads an unquoted ``NO`` (Norway) as false; say so instead of "not a string"."""
    if isinstance(value, bool):
        raise ValueError("got true/false: quote country codes such as 'NO' in YAML")
    return value


def _country(value: str) -> str:
    return value.strip().upper()


CountryCode = Annotated[str, BeforeValidator(_not_a_yaml_boolean), AfterValidator(_country)]
"""An ISO 3166-1 alpha-2 country code, upper-cased (``de`` is ``DE``)."""

HOLIDAY_YEARS = "holiday_years"
"""Validation-context key: the ``range`` of years to expand public holidays for. A loader
passes it (see ``handoff.routing.parse_routing``); without it the years around today apply."""


def as_utc(value: datetime, name: str = "instant") -> datetime:
    """Return ``value`` in UTC; naive datetimes are refused because their meaning is a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


class TimeRange(StrictModel):
    """One working range of a day in local wall-clock time, written ``"09:00-17:00"``.

    ``end`` of 00:00 (or ``"24:00"`` in the short form) means the midnight that ends the day,
    so ``"00:00-24:00"`` is a whole day.
    """

    start: time
    end: time

    @model_validator(mode="before")
    @classmethod
    def _parse_short_form(cls, value: Any) -> Any:
        """Configs write ranges as strings; that reads better than two nested fields."""
        if not isinstance(value, str):
            return value
        parts = [part.strip() for part in value.split("-")]
        if len(parts) != 2:
            raise ValueError(f"expected a range like '09:00-17:00', got {value!r}")
        start, end = parts
        return {"start": start, "end": "00:00" if end == _END_OF_DAY else end}

    @model_validator(mode="after")
    def _check_order(self) -> TimeRange:
        """A range must have positive length and carry no time zone (the calendar's applies)."""
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("working hours are local times; give the zone on the calendar")
        if self.end_offset <= self.start_offset:
            raise ValueError(f"range {self} ends before it starts")
        return self

    @property
    def start_offset(self) -> timedelta:
        """Wall-clock time since local midnight at which the range opens."""
        return _since_midnight(self.start)

    @property
    def end_offset(self) -> timedelta:
        """Wall-clock time since local midnight at which the range closes (00:00 means 24h)."""
        return _since_midnight(self.end) or _DAY

    @property
    def length(self) -> timedelta:
        """Nominal wall-clock length; a DST change inside the range is not reflected here."""
        return self.end_offset - self.start_offset

    def __str__(self) -> str:
        end = _END_OF_DAY if self.end_offset == _DAY else self.end.isoformat("minutes")
        return f"{self.start.isoformat('minutes')}-{end}"


def _since_midnight(value: time) -> timedelta:
    return timedelta(
        hours=value.hour,
        minutes=value.minute,
        seconds=value.second,
        microseconds=value.microsecond,
    )


def _expand_days(key: str) -> list[Weekday]:
    """``"mon-fri"`` -> mon..fri; ranges may wrap (``"sun-thu"``) for Sunday-start work weeks."""
    names = [part.strip().lower() for part in key.split("-")]
    if len(names) not in (1, 2) or any(name not in _DAY_INDEX for name in names):
        raise ValueError(f"unknown weekday {key!r}; use mon..sun or a range like 'mon-fri'")
    first = _DAY_INDEX[names[0]]
    count = (_DAY_INDEX[names[-1]] - first) % 7 + 1
    return [WEEKDAYS[(first + step) % 7] for step in range(count)]


def _default_hours() -> dict[Weekday, tuple[TimeRange, ...]]:
    nine_to_five = (TimeRange(start=time(9), end=time(17)),)
    return {day: nine_to_five for day in WEEKDAYS[:5]}


class BusinessCalendar(StrictModel):
    """Working hours per weekday in one time zone, minus holidays.

    ``hours`` maps weekdays (or ranges such as ``mon-fri``) to one range or a list of ranges;
    days not named are closed. ``holidays`` are local dates that are closed all day (company
    closures). ``country`` (and ``subdivision``) add that country's public holidays, less those
    named in ``except_holidays``; they are expanded into ``public_holidays`` when the calendar is
    validated from a definition, never by hand. ``business_day`` is how long "1 business day"
    lasts in SLA terms; by default it is the length of the calendar's usual working day (8h for
    09:00-17:00).
    """

    name: str = Field(min_length=1)
    timezone: TimeZoneName
    hours: dict[Weekday, tuple[TimeRange, ...]] = Field(default_factory=_default_hours)
    holidays: frozenset[date] = frozenset()
    country: CountryCode | None = None
    subdivision: str | None = Field(default=None, min_length=1)
    except_holidays: frozenset[str] = frozenset()
    public_holidays: frozenset[date] = frozenset()
    business_day: timedelta | None = Field(default=None, gt=timedelta(0))

    @model_validator(mode="wrap")
    @classmethod
    def _expand_public_holidays(
        cls, data: Any, handler: ModelWrapValidatorHandler[BusinessCalendar], info: ValidationInfo
    ) -> BusinessCalendar:
        """Expand ``country`` into dates unless the input already carries them (a payload)."""
        carried = isinstance(data, Mapping) and "public_holidays" in data
        years = (info.context or {}).get(HOLIDAY_YEARS)
        if carried and years is not None:
            raise _field_error(
                "public_holidays",
                "is filled from `country` when the definition loads; "
                "list company closures under `holidays`",
                data["public_holidays"],
            )
        calendar = handler(data)
        if not isinstance(data, Mapping) or carried:
            return calendar
        if calendar.country is None:
            for field in ("subdivision", "except_holidays"):
                if getattr(calendar, field):
                    raise _field_error(field, "needs a `country`", data.get(field))
            return calendar
        try:
            dates = public_holiday_dates(
                calendar.country,
                calendar.subdivision,
                years or holiday_years(datetime.now(UTC).date()),
                calendar.except_holidays,
            )
        except CalendarFieldError as exc:
            raise _field_error(exc.field, str(exc), data.get(exc.field)) from exc
        return handler({**data, "public_holidays": dates})  # validated: __init__ keeps self

    @field_validator("business_day", mode="before")
    @classmethod
    def _parse_short_duration(cls, value: Any) -> Any:
        """Accept ``"8h"`` or ``"450m"`` (``revops.durations``), as people write a day's length."""
        if not isinstance(value, str) or WORKING_DAY.read(value) is None:
            return value  # let pydantic try ISO 8601 ("PT8H") and report its own error
        return to_timedelta(value, grammar=WORKING_DAY)

    @field_validator("hours", mode="before")
    @classmethod
    def _expand_weekday_keys(cls, value: Any) -> Any:
        """Let configs say ``mon-fri: "09:00-17:00"`` instead of five identical lines."""
        if not isinstance(value, Mapping):
            return value
        expanded: dict[str, Any] = {}
        for key, ranges in value.items():
            for day in _expand_days(str(key)):
                if day in expanded:
                    raise ValueError(f"{day} is given more than once")
                expanded[day] = _as_range_list(ranges)
        return expanded

    @field_validator("hours", mode="after")
    @classmethod
    def _sort_and_check_overlap(
        cls, value: dict[Weekday, tuple[TimeRange, ...]]
    ) -> dict[Weekday, tuple[TimeRange, ...]]:
        """Sorted, disjoint ranges let the interval walk stay simple; at least one open day."""
        result: dict[Weekday, tuple[TimeRange, ...]] = {}
        for day, ranges in value.items():
            ordered = tuple(sorted(ranges, key=lambda item: item.start_offset))
            for before, after in pairwise(ordered):
                if after.start_offset < before.end_offset:
                    raise ValueError(f"{day}: ranges {before} and {after} overlap")
            result[day] = ordered
        if not any(result.values()):
            raise ValueError("a calendar needs working hours on at least one weekday")
        return result

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone (zoneinfo caches instances, so this is cheap)."""
        return ZoneInfo(self.timezone)

    def ranges_on(self, day: date) -> tuple[TimeRange, ...]:
        """Working ranges of a local date: none on holidays and closed weekdays."""
        if day in self.holidays or day in self.public_holidays:
            return ()
        return self.hours.get(WEEKDAYS[day.weekday()], ())

    def business_day_length(self) -> timedelta:
        """What "1 business day" means: ``business_day`` if set, else the usual day's length.

        The usual day is the most common length among open weekdays (the longer one on a tie),
        so a short Friday does not shrink every SLA measured in days.
        """
        if self.business_day is not None:
            return self.business_day
        lengths = [sum((r.length for r in day), timedelta()) for day in self.hours.values() if day]
        return max(lengths, key=lambda length: (lengths.count(length), length))


def _field_error(field: str, message: str, value: Any) -> ValidationError:
    """An error located at ``field`` of the calendar, so the message names the YAML path."""
    error = PydanticCustomError("calendar_field", "{message}", {"message": message})
    return ValidationError.from_exception_data(
        "BusinessCalendar", [InitErrorDetails(type=error, loc=(field,), input=value)]
    )


def _as_range_list(ranges: Any) -> Any:
    """A single range string, a list of them, or nothing (closed) all become a list."""
    if ranges is None or ranges == "closed":
        return []
    if isinstance(ranges, str | Mapping | TimeRange):
        return [ranges]
    return ranges


def _wall_time(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _local_to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """Map a local wall-clock time to the instant it names.

    Ambiguous times (clocks going back) take the first occurrence. Times skipped by a spring
    forward do not exist; they map to the instant the clock jumps, the first instant whose wall
    time is not earlier, so a range starting inside the gap opens as soon as the day resumes.
    """
    instant = local.replace(tzinfo=zone).astimezone(UTC)
    if _wall_time(instant, zone) == local:
        return instant
    return _end_of_gap(local, zone)


def _end_of_gap(local: datetime, zone: ZoneInfo) -> datetime:
    """Binary search between the two readings of a skipped time for the jump instant.

    ``fold=1`` reads the time with the offset after the change (an instant just before the
    gap), ``fold=0`` with the offset before it (an instant after the gap); the jump lies
    between them and is at most a few hours away, so this takes about a dozen steps.
    """
    low = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    while high - low > _SECOND:
        middle = low + (high - low) // 2
        if _wall_time(middle, zone) >= local:
            high = middle
        else:
            low = middle
    return high


def _day_intervals(calendar: BusinessCalendar, day: date) -> list[Interval]:
    """UTC intervals during which ``calendar`` is open on local date ``day``, sorted."""
    zone = calendar.zone
    midnight = datetime.combine(day, time())
    intervals: list[Interval] = []
    for item in calendar.ranges_on(day):
        start = _local_to_utc(midnight + item.start_offset, zone)
        end = _local_to_utc(midnight + item.end_offset, zone)
        if end <= start:
            continue  # the whole range fell into a DST gap
        if intervals and start <= intervals[-1][1]:
            intervals[-1] = (intervals[-1][0], max(end, intervals[-1][1]))
        else:
            intervals.append((start, end))
    return intervals


def _open_intervals(calendar: BusinessCalendar, at: datetime) -> Iterator[Interval]:
    """Endless, ordered open intervals from ``at`` on, the first one clipped to start at ``at``.

    Endless is safe: a calendar has at least one working weekday and finitely many holidays.
    The walk starts a day early because around a DST change at midnight an instant's local
    date can be the day after the one whose ranges still contain it.
    """
    day = _wall_time(at, calendar.zone).date() - _DAY
    while True:
        for start, end in _day_intervals(calendar, day):
            if end > at:
                yield max(start, at), end
        day += _DAY


def add_business_time(calendar: BusinessCalendar, start: datetime, duration: timedelta) -> datetime:
    """The earliest instant by which ``duration`` of working time has passed since ``start``.

    Time outside working hours does not count, so the result of a positive duration always
    lies in working hours or at the close of a range (Friday 16:00 + 1h with 9-17 hours is
    Friday 17:00, not Monday 09:00). A start outside working hours begins at the next opening.
    """
    begin = as_utc(start, "start")
    if duration < timedelta(0):
        raise ValueError(f"duration must not be negative, got {duration}")
    if not duration:
        return begin
    remaining = duration
    intervals = _open_intervals(calendar, begin)
    while True:
        opens, closes = next(intervals)
        if remaining <= closes - opens:
            return opens + remaining
        remaining -= closes - opens


def add_business_days(calendar: BusinessCalendar, start: datetime, days: float) -> datetime:
    """``start`` plus ``days`` business days of the calendar's business-day length.

    With 09:00-17:00 hours, 1 business day from Friday 16:00 is Monday 16:00.
    """
    return add_business_time(calendar, start, calendar.business_day_length() * days)


def business_time_between(calendar: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    """Working time from ``a`` to ``b``; negative when ``b`` is before ``a``.

    The inverse of :func:`add_business_time`: ``business_time_between(c, s,
    add_business_time(c, s, d)) == d`` for every ``d >= 0``.
    """
    first, last = as_utc(a, "a"), as_utc(b, "b")
    if last < first:
        return -business_time_between(calendar, last, first)
    total = timedelta(0)
    for opens, closes in _open_intervals(calendar, first):
        if opens >= last:
            return total
        total += min(closes, last) - opens
    raise AssertionError("unreachable: open intervals never run out")


def is_open(calendar: BusinessCalendar, at: datetime) -> bool:
    """Whether ``at`` is inside working hours (a range's opening counts, its closing not)."""
    instant = as_utc(at, "at")
    opens, _ = next(_open_intervals(calendar, instant))
    return opens == instant


def next_open(calendar: BusinessCalendar, at: datetime) -> datetime:
    """``at`` itself if the calendar is open then, else the next opening (in UTC)."""
    instant = as_utc(at, "at")
    opens, _ = next(_open_intervals(calendar, instant))
    return opens
