"""Global contact policies (config/policies.yaml): suppression, frequency cap, quiet hours.

These are the rules that hold across every journey, plus default priorities by category. They
are data, validated here, and the rules engine compiles them into its ruleset, so changing a
number changes the ruleset version. The time arithmetic lives here too (pure, ``now`` passed
in): when the cap releases, when quiet hours end in the contact's zone (correct across DST
changes), so tests can check it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationError, field_validator, model_validator

from audience.conditions import config_error
from revops.strict import StrictModel

__all__ = [
    "FrequencyCapPolicy",
    "HandRaiserPolicy",
    "HoldPolicy",
    "Policies",
    "QuietHoursPolicy",
    "SuppressionPolicy",
    "earliest_send_at",
    "parse_policies",
    "with_hand_raisers",
]


class SuppressionPolicy(StrictModel):
    """Who gets no marketing (and, for competitors, nothing non-transactional at all).

    Members of a suppression list (``kind: suppression`` in lists.yaml) get no marketing:
    no marketing journey enrolls them and no marketing send goes out. Transactional messages
    (``transactional: true`` sends, journeys with ``marketing: false``) still go unless
    ``lists_block_transactional`` is set. While an opportunity is open (``open_opportunity``)
    the contact gets no marketing until it is won or lost.
    """

    require_subscription: bool = True
    honour_unsubscribe: bool = True
    require_gdpr_consent: bool = True
    ccpa_opt_out_blocks_marketing: bool = True
    hard_bounce: bool = True
    spam_complaint: bool = True
    competitors: bool = True
    sales_activity_days: float = Field(default=14, ge=0)
    customer_stages: list[str] = Field(default_factory=lambda: ["Customer", "Evangelist"])
    customers_leave_acquisition: bool = True
    lists_block_transactional: bool = False
    open_opportunity: bool = True


class FrequencyCapPolicy(StrictModel):
    """At most ``max_sends`` marketing messages per rolling window; over it, defer (never drop)."""

    enabled: bool = True
    max_sends: int = Field(default=3, ge=1)
    window_days: float = Field(default=7, gt=0)
    channels: list[str] = Field(default_factory=lambda: ["email"])

    @property
    def window(self) -> timedelta:
        """The rolling window as a duration."""
        return timedelta(days=self.window_days)

    def in_window(self, now: datetime, sends: Sequence[datetime]) -> list[datetime]:
        """Sends still counting at ``now``: a send at ``s`` leaves the window at ``s + window``."""
        start = now - self.window
        return sorted(s for s in sends if start < s <= now)

    def release_at(self, now: datetime, sends: Sequence[datetime]) -> datetime:
        """The first moment at or after ``now`` when one more send fits under the cap."""
        counted = self.in_window(now, sends)
        excess = len(counted) - self.max_sends
        if excess < 0:
            return now
        return counted[excess] + self.window


class QuietHoursPolicy(StrictModel):
    """No sends between ``start`` and ``end`` local time (the window may wrap midnight)."""

    enabled: bool = True
    start: time = time(20, 0)
    end: time = time(8, 0)
    channels: list[str] = Field(default_factory=lambda: ["email", "sms"])
    transactional_exempt: bool = True

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted_times(cls, value: Any) -> Any:
        """YAML reads an unquoted 20:00 as the number 1200; say so instead of guessing."""
        if isinstance(value, int | float):
            raise ValueError("write times as quoted 'HH:MM' strings, e.g. '20:00'")
        return value

    @model_validator(mode="after")
    def _non_empty(self) -> QuietHoursPolicy:
        """Equal bounds would mean 'always' or 'never'; neither is what anyone meant."""
        if self.start == self.end:
            raise ValueError("quiet hours start and end must differ")
        if self.start.second or self.end.second or self.start.microsecond or self.end.microsecond:
            raise ValueError("quiet hours are whole minutes ('HH:MM')")
        return self

    def local_minute(self, now: datetime, zone: ZoneInfo) -> int:
        """Minutes since local midnight, what the compiled quiet-hours rule compares."""
        local = now.astimezone(zone)
        return local.hour * 60 + local.minute

    def is_quiet(self, now: datetime, zone: ZoneInfo) -> bool:
        """True when ``now`` falls inside quiet hours in ``zone``."""
        local = now.astimezone(zone).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_allowed(self, now: datetime, zone: ZoneInfo) -> datetime:
        """``now`` if sending is allowed, else the instant quiet hours end (in UTC).

        The end is computed on the local calendar and then converted, so a DST change the
        same night moves the UTC instant but not the local 08:00.
        """
        if not self.is_quiet(now, zone):
            return now
        local = now.astimezone(zone)
        day = local.date()
        if self.start > self.end and local.time().replace(tzinfo=None) >= self.start:
            day += timedelta(days=1)
        return _local_instant(day, self.end, zone)


def _local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of local ``day at``; a time skipped by DST moves to the first real minute.

    An ambiguous time (clocks going back) resolves to its first occurrence (fold=0).
    """
    naive = datetime.combine(day, at)
    for minutes in range(0, 24 * 60):
        candidate = naive + timedelta(minutes=minutes)
        instant = candidate.replace(tzinfo=zone).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == candidate:
            return instant
    raise ValueError(f"no valid local time after {naive} in {zone.key}")  # pragma: no cover


class HandRaiserPolicy(StrictModel):
    """Hand-raisers route to sales now; nurture journeys step aside.

    Which events are hand-raisers is said once, in the scoring model (``hand_raisers``: they
    qualify at once); the definitions service puts those names in ``events`` for the rules.
    A policies file that still lists ``events`` must agree with the scoring model.
    """

    events: list[str] | None = None
    suppress_categories: list[str] = Field(default_factory=lambda: ["nurture"])
    active_action: Literal["pause", "exit"] = "pause"


class HoldPolicy(StrictModel):
    """Members of these (static) lists get no automation at all: running journeys pause,
    none start, nothing is sent; leaving the list resumes the paused journeys."""

    lists: list[str] = Field(default_factory=list)


class Policies(StrictModel):
    """All global policies; defaults are the SPEC's numbers."""

    suppression: SuppressionPolicy = Field(default_factory=SuppressionPolicy)
    frequency_cap: FrequencyCapPolicy = Field(default_factory=FrequencyCapPolicy)
    quiet_hours: QuietHoursPolicy = Field(default_factory=QuietHoursPolicy)
    hand_raiser: HandRaiserPolicy = Field(default_factory=HandRaiserPolicy)
    hold: HoldPolicy = Field(default_factory=HoldPolicy)
    priorities: dict[str, int] = Field(
        default_factory=lambda: {"demo_ready": 90, "trial": 50, "nurture": 10}
    )


def with_hand_raisers(policies: Policies, names: Sequence[str]) -> Policies:
    """The policies with the hand-raiser event names of the scoring model (their one source)."""
    hand_raiser = policies.hand_raiser.model_copy(update={"events": list(names)})
    return policies.model_copy(update={"hand_raiser": hand_raiser})


def earliest_send_at(
    policies: Policies,
    now: datetime,
    zone: ZoneInfo,
    sends: Sequence[datetime],
    *,
    capped: bool,
    quiet: bool,
) -> datetime:
    """When a deferred send may go: after the cap releases, then outside quiet hours.

    Moving later only lets sends leave the window, so one cap step then one quiet step is
    already the fixpoint: the result is under the cap and outside quiet hours.
    """
    at = now
    if capped and policies.frequency_cap.enabled:
        at = policies.frequency_cap.release_at(at, sends)
    if quiet and policies.quiet_hours.enabled:
        at = policies.quiet_hours.next_allowed(at, zone)
    return at


def parse_policies(data: Any, source: str = "<policies>") -> Policies:
    """Validate a policies mapping; a bad one is a ConfigError naming ``source`` and the field."""
    try:
        return Policies.model_validate(data or {})
    except ValidationError as exc:
        raise config_error(exc, source) from exc
