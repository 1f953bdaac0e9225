"""Durations as definitions write them: one grammar, a number and a unit.

``30m``, ``12h``, ``7d``, ``2w`` in conditions, journeys and scoring (``Duration``); routing
files also take business days (``1bd``), fractions (``7.5h``) and spelled-out units
(``4 hours``, ``2 business days``). Each use names a ``Grammar`` (which units, whether
fractions and words) and every one of them reads and refuses the same way:
``'7x' is not a duration (use 30m, 12h, 7d, 2w)``. ``format_duration`` writes a duration back
in its shortest form, so a parsed definition dumps to what was written.

Pure and deterministic: workflow code parses definitions too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from revops.errors import ConfigError

__all__ = [
    "BUSINESS",
    "WALL_CLOCK",
    "WORKING_DAY",
    "Duration",
    "Grammar",
    "Unit",
    "format_duration",
    "parse_duration",
    "to_timedelta",
]

Unit = Literal["m", "h", "d", "w", "bd"]
"""Minutes, hours, days, weeks, business days (as long as a calendar's working day)."""

_AMOUNT = re.compile(r"\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>[a-z][a-z _]*?)\s*", re.IGNORECASE)
_SYMBOLS: Mapping[str, Unit] = MappingProxyType(
    {"m": "m", "h": "h", "d": "d", "w": "w", "bd": "bd"}
)
_WORDS: Mapping[str, Unit] = MappingProxyType(
    {
        "min": "m",
        "mins": "m",
        "minute": "m",
        "minutes": "m",
        "hour": "h",
        "hours": "h",
        "day": "d",
        "days": "d",
        "week": "w",
        "weeks": "w",
        "business day": "bd",
        "business days": "bd",
    }
)
_SECONDS: Mapping[str, int] = MappingProxyType({"w": 604_800, "d": 86_400, "h": 3_600, "m": 60})
_EXAMPLES: Mapping[str, str] = MappingProxyType(
    {"m": "30m", "h": "12h", "d": "7d", "w": "2w", "bd": "1bd"}
)


@dataclass(frozen=True)
class Grammar:
    """Which units a duration field takes, and whether it takes fractions and spelled units."""

    units: tuple[Unit, ...]
    fractions: bool = False
    words: bool = False

    @property
    def hint(self) -> str:
        """What to write instead, for error messages: ``use 30m, 12h, 7d, 2w``."""
        return "use " + ", ".join(_EXAMPLES[unit] for unit in self.units)

    def read(self, text: str) -> tuple[float, Unit] | None:
        """``(amount, unit)`` when ``text`` is a duration of this grammar, else None."""
        match = _AMOUNT.fullmatch(text)
        if match is None or ("." in match["amount"] and not self.fractions):
            return None
        written = " ".join(match["unit"].lower().replace("_", " ").split())
        unit = _SYMBOLS.get(written) or (_WORDS.get(written) if self.words else None)
        if unit is None or unit not in self.units:
            return None
        return float(match["amount"]), unit

    def parse(self, text: object) -> tuple[float, Unit]:
        """``(amount, unit)``, or ValueError saying what a duration looks like."""
        found = self.read(text) if isinstance(text, str) else None
        if found is None:
            raise ValueError(f"{text!r} is not a duration ({self.hint})")
        return found


WALL_CLOCK = Grammar(units=("m", "h", "d", "w"))
"""Conditions, journeys and scoring: whole minutes, hours, days or weeks (``7d``)."""
BUSINESS = Grammar(units=("m", "h", "bd"), fractions=True, words=True)
"""SLA windows in routing files: ``15m``, ``4 hours``, ``1bd``, ``2 business days``."""
WORKING_DAY = Grammar(units=("m", "h"), fractions=True, words=True)
"""The length of a calendar's business day: ``8h``, ``7.5h``, ``450m``."""


def to_timedelta(value: object, *, grammar: Grammar = WALL_CLOCK) -> timedelta:
    """A positive duration from ``7d`` (or a timedelta, or whole seconds); else ValueError."""
    if isinstance(value, timedelta):
        delta = value
    elif isinstance(value, int) and not isinstance(value, bool):
        delta = timedelta(seconds=value)
    else:
        amount, unit = grammar.parse(value)
        if unit == "bd":
            raise ValueError(f"{value!r}: business days need a calendar ({grammar.hint})")
        delta = timedelta(seconds=amount * _SECONDS[unit])
    if delta <= timedelta(0):
        raise ValueError(f"{value!r} is not a positive duration ({grammar.hint})")
    return delta


def parse_duration(value: object) -> timedelta:
    """``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` or an int of seconds as a positive timedelta.

    Raises ConfigError (not ValueError) because a bad duration is always a definition mistake
    the ops engineer has to fix.
    """
    try:
        return to_timedelta(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def format_duration(delta: timedelta) -> str | int | float:
    """The shortest YAML form of ``delta`` (``"7d"``, ``"12h"``...), else its seconds."""
    seconds = delta.total_seconds()
    whole = int(seconds)
    if whole != seconds:
        return seconds
    for unit, size in _SECONDS.items():
        if unit != "w" and whole % size == 0:  # "14d" reads better than "2w" in a list file
            return f"{whole // size}{unit}"
    return whole


Duration = Annotated[
    timedelta,
    BeforeValidator(to_timedelta),
    PlainSerializer(format_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*[0-9]+\s*[mhdwMHDW]\s*$"},
                {"type": "integer", "minimum": 1},
            ],
            "description": "A duration: 30m, 12h, 7d, 2w, or whole seconds.",
        }
    ),
]
"""A positive duration field: parsed from ``7d`` etc., written back in the same form."""
