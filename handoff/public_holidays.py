"""Public holidays of a country as concrete dates, for business calendars.

A calendar in ``config/routing.yaml`` may name a country (and a subdivision) instead of typing
holiday dates by hand every year. The maintained ``holidays`` package knows those rules; this
module turns them into a plain set of dates once, when the definition loads, for a bounded span
of years around that moment. Workflow code only ever sees the dates, so it stays deterministic
and never imports ``holidays`` (the import happens inside the functions here).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date

__all__ = [
    "YEARS_AFTER",
    "YEARS_BEFORE",
    "CalendarFieldError",
    "holiday_years",
    "public_holiday_dates",
]

YEARS_BEFORE = 1
"""Years before the loading year whose holidays are expanded (late leads of last year)."""
YEARS_AFTER = 5
"""Years after the loading year whose holidays are expanded; beyond them only ``holidays``
(the explicit dates) apply, so a definition should be reloaded at least every few years."""

_LANGUAGE = "en_US"  # holiday names are matched in English, whatever the machine's locale
_QUALIFIER = re.compile(r"\s*\([^()]*\)$")  # "Christmas Day (observed)" -> "Christmas Day"


class CalendarFieldError(ValueError):
    """A calendar field the holidays package cannot use; ``field`` names it for the message."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def holiday_years(today: date) -> range:
    """The years a definition loaded on ``today`` carries public holidays for."""
    return range(today.year - YEARS_BEFORE, today.year + YEARS_AFTER + 1)


def public_holiday_dates(
    country: str,
    subdivision: str | None,
    years: range,
    except_holidays: Collection[str] = (),
) -> frozenset[date]:
    """Dates of ``country``'s public holidays in ``years``, less those named in ``except_holidays``.

    Pure given its arguments and the installed ``holidays`` version. A date is dropped only when
    every holiday on it is excepted; a name matches with or without its qualifier, so
    ``Christmas Day`` also drops ``Christmas Day (observed)``. Raises CalendarFieldError naming
    ``country``, ``subdivision`` or ``except_holidays`` when one of them is unknown.
    """
    table = _holiday_names(country, subdivision, years)
    excepted = set(except_holidays)
    known = {spelling for names in table.values() for n in names for spelling in _spellings(n)}
    unknown = sorted(excepted - known)
    if unknown:
        raise CalendarFieldError(
            "except_holidays",
            f"no {country} public holiday is named {unknown[0]!r} in {years[0]}-{years[-1]} "
            f"(names: {', '.join(sorted({_QUALIFIER.sub('', n) for n in known}))})",
        )
    return frozenset(
        day
        for day, names in table.items()
        if not all(_spellings(name) & excepted for name in names)
    )


def _holiday_names(country: str, subdivision: str | None, years: range) -> dict[date, list[str]]:
    import holidays  # loading definitions needs it; workflow payloads already carry the dates

    supported = holidays.list_supported_countries()
    if country not in supported:
        raise CalendarFieldError(
            "country",
            f"unknown country code {country!r}: public holidays need an ISO 3166-1 alpha-2 code "
            "that the holidays package supports, such as US, GB or DE",
        )
    try:
        table = holidays.country_holidays(
            country, subdiv=subdivision, years=years, expand=False, language=_LANGUAGE
        )
    except NotImplementedError as exc:
        raise CalendarFieldError(
            "subdivision",
            f"{country} has no subdivision {subdivision!r} "
            f"(known: {', '.join(supported[country]) or 'none'})",
        ) from exc
    return {day: table.get_list(day) for day in sorted(table)}


def _spellings(name: str) -> set[str]:
    return {name, _QUALIFIER.sub("", name)}
