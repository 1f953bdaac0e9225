"""Incrementality of a journey: goal conversion of the enrolled against the held out.

A journey with a ``holdout`` records every would-be enrollee as ``enrolled`` or ``held_out``
(a hash of the contact) and every goal reached. The lift is the difference of the two
conversion rates, in percentage points, with a Wald confidence interval for a difference of
two proportions (normal approximation; fine from a few dozen contacts per group, wide below).
Pure: callers pass the counts.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from pydantic import BaseModel

__all__ = ["GroupConversion", "HoldoutReport", "holdout_report"]


class GroupConversion(BaseModel):
    """One group: contacts, those who reached a goal, and the rate."""

    contacts: int
    converted: int
    rate: float | None


class HoldoutReport(BaseModel):
    """Enrolled versus held out, the absolute and relative lift, and the interval."""

    enrolled: GroupConversion
    held_out: GroupConversion
    lift: float | None
    """Conversion of the enrolled minus that of the held out (0.05: five points more)."""
    relative_lift: float | None
    """``lift`` over the held-out rate (None when nobody held out converted)."""
    confidence: float
    ci_low: float | None
    ci_high: float | None
    significant: bool
    """The interval excludes zero: the journey changes conversion at this confidence."""


def _group(contacts: int, converted: int) -> GroupConversion:
    rate = converted / contacts if contacts else None
    return GroupConversion(contacts=contacts, converted=converted, rate=rate)


def holdout_report(
    enrolled: tuple[int, int], held_out: tuple[int, int], *, confidence: float = 0.95
) -> HoldoutReport:
    """The report from ``(contacts, converted)`` of each group."""
    treated, control = _group(*enrolled), _group(*held_out)
    if treated.rate is None or control.rate is None:
        return HoldoutReport(
            enrolled=treated,
            held_out=control,
            lift=None,
            relative_lift=None,
            confidence=confidence,
            ci_low=None,
            ci_high=None,
            significant=False,
        )
    lift = treated.rate - control.rate
    spread = math.sqrt(
        treated.rate * (1 - treated.rate) / treated.contacts
        + control.rate * (1 - control.rate) / control.contacts
    )
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    low, high = lift - z * spread, lift + z * spread
    return HoldoutReport(
        enrolled=treated,
        held_out=control,
        lift=lift,
        relative_lift=lift / control.rate if control.rate else None,
        confidence=confidence,
        ci_low=low,
        ci_high=high,
        significant=low > 0 or high < 0,
    )
