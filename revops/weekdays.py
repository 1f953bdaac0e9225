"""Weekday names as definitions write them: ``mon`` .. ``sun``, Monday first.

Business calendars (``handoff.business_time``: ``mon-fri: 09:00-17:00``) and journey waits
(``journeys.steps``: ``until: {time: '10:00', weekday: tue}``) name days the same way; both
packages sit above this one, so neither imports the other for it.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["WEEKDAYS", "Weekday"]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""In ``date.weekday()`` order: ``WEEKDAYS.index(day)`` is Python's weekday number."""
