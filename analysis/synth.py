"""Synthetic event history for backtests, benchmarks and demos.

Real histories carry personal data and take months to accumulate; an ops engineer trying a
scoring change needs a realistic one now. ``generate`` writes the gateway's JSONL shape
(Segment-like ``identify`` and ``track`` records) for a mix of ICP and non-ICP contacts whose
behaviour follows a hidden buying intent: intent makes pricing views, case studies, webinars and
demo requests more likely, and it makes a rep's qualification (``Lead Qualified`` from the sales
tool) more likely too. So a good scoring model finds the converters and a bad one does not.

Deterministic for a seed: the same (contacts, events, seed) always yields the same records in
the same order (one ``random.Random(seed)``, no clocks, no global state). Records come out in
time order across contacts, as a gateway's log would.

``signals=True`` adds the product and sales signals of seed 000/002 (feature usage, email
replies, meetings booked, event participation, a ``tech_stack`` trait) and students and job
seekers: heavy readers on school or free addresses who never buy. Off, the history is the one
earlier releases made for the same seed.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

__all__ = ["HISTORY_START", "OUTCOME_EVENT", "generate"]

HISTORY_START = datetime(2025, 1, 1, tzinfo=UTC)
"""The first moment of every synthetic history (fixed, so output never depends on a clock)."""

OUTCOME_EVENT = "Lead Qualified"
"""What the sales tool posts when a rep qualifies a lead (the backtest's SQL outcome)."""

_DAYS = 180
_ICP_SHARE = 0.35

_TARGET_INDUSTRIES = ("Software", "Fintech", "Cybersecurity", "Healthcare Technology")
_OTHER_INDUSTRIES = ("Retail", "Education", "Manufacturing", "Hospitality", "Government", "Media")
_TARGET_COUNTRIES = ("US", "US", "US", "GB", "CA", "DE", "NL", "AU")
_OTHER_COUNTRIES = ("BR", "IN", "MX", "ZA", "JP", "ID")
_SENIOR = (
    ("VP of Marketing", "VP"),
    ("Chief Revenue Officer", "C-Level"),
    ("Director of Sales Operations", "Director"),
    ("Head of Growth", "Head"),
    ("Co-Founder", "Founder"),
)
_JUNIOR = (
    ("Marketing Manager", "Manager"),
    ("Sales Development Representative", "Individual Contributor"),
    ("Content Specialist", "Individual Contributor"),
    ("Student", "Student"),
    ("Analyst", "Individual Contributor"),
)
_FREE = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com")
_STUDENTS = (("Student", "Student"), ("Job Seeker", "Individual Contributor"), ("Intern", "Intern"))
_SCHOOLS = ("state.edu", "tech.edu", "uni.ac.uk", "gmail.com")
_TARGET_STACK = ("Salesforce", "HubSpot", "Segment", "Snowflake", "Marketo")
_OTHER_STACK = ("Excel", "Mailchimp", "Zoho", "Pipedrive", "Airtable")
_STUDENT_SHARE = 0.12  # of non-ICP contacts
_COMPETITORS = ("rivalcloud.io", "pipelinepro.com", "leadforge.ai")
_BLOG = ("/blog/lead-scoring-101", "/blog/mql-vs-sql", "/blog/nurture-cadence", "/docs/api")


@dataclass(frozen=True, slots=True)
class _Behaviour:
    """A behaviour's base weight and how much intent adds to it."""

    name: str
    base: float
    per_intent: float


_BEHAVIOURS = (
    _Behaviour("Email Opened", 45.0, 5.0),
    _Behaviour("Page Viewed", 35.0, 0.0),
    _Behaviour("Email Clicked", 5.0, 4.0),
    _Behaviour("Case Study Viewed", 1.0, 6.0),
    _Behaviour("Pricing Page Viewed", 0.3, 8.0),
    _Behaviour("Webinar Attended", 0.5, 2.0),
    _Behaviour("Demo Requested", 0.02, 0.4),
    _Behaviour("Contact Sales Submitted", 0.01, 0.2),
    _Behaviour("Email Bounced", 0.3, 0.0),
    _Behaviour("Spam Complaint", 0.2, -0.2),
)
_SIGNALS = (
    _Behaviour("Feature Used", 1.0, 9.0),
    _Behaviour("Email Replied", 0.2, 2.0),
    _Behaviour("Meeting Booked", 0.01, 0.5),
    _Behaviour("Event Attended", 0.3, 1.5),
)
"""Signals of ``signals=True``: product usage, replies, meetings, events, driven by intent."""


@dataclass(frozen=True, slots=True)
class _Profile:
    """One synthetic contact: traits, hidden intent, when they were active."""

    index: int
    user_id: str
    traits: dict[str, Any]
    icp: bool
    intent: float
    start: float  # seconds after HISTORY_START
    peak: float
    signals: bool = False
    student: bool = False


def generate(
    contacts: int, events: int, seed: int, *, signals: bool = False
) -> Iterator[dict[str, Any]]:
    """Yield ``events`` records for up to ``contacts`` contacts, in time order.

    Every contact starts with an ``identify``; if ``events < contacts`` only the first
    ``events`` contacts appear. Some engaged contacts end with a ``Lead Qualified`` event from
    the sales tool; some send a later ``identify`` with ``unsubscribed: true``.
    """
    if contacts <= 0 or events <= 0:
        return
    rng = random.Random(seed)
    profiles = [_profile(rng, index, seed, signals) for index in range(min(contacts, events))]
    counts = _allocate(events, [0.3 + 3.0 * p.intent for p in profiles], rng)
    timelines = [_timeline(p, n, seed) for p, n in zip(profiles, counts, strict=True)]
    for _, _, record in heapq.merge(*timelines):
        yield record


def _profile(rng: random.Random, index: int, seed: int, signals: bool = False) -> _Profile:
    icp = rng.random() < _ICP_SHARE
    intent = rng.random() ** (1.2 if icp else 6.0)
    start = rng.uniform(0, _DAYS * 0.75) * 86_400
    peak = start + rng.uniform(5, 60) * 86_400
    traits = _traits(rng, icp, index)
    student = False
    if signals:
        student = not icp and rng.random() < _STUDENT_SHARE
        traits = _signal_traits(rng, icp, student, traits)
    return _Profile(
        index=index,
        user_id=f"synth-{seed}-{index:07d}",
        traits=traits,
        icp=icp,
        intent=intent,
        start=start,
        peak=min(peak, _DAYS * 86_400.0),
        signals=signals,
        student=student,
    )


def _signal_traits(
    rng: random.Random, icp: bool, student: bool, traits: dict[str, Any]
) -> dict[str, Any]:
    """A tech stack (ICP companies mostly run the tools we integrate with), and for students
    and job seekers a school or free address and a title saying so."""
    stack = rng.sample(_TARGET_STACK if rng.random() < (0.7 if icp else 0.2) else _OTHER_STACK, 2)
    traits = {**traits, "tech_stack": stack}
    if student:
        title, seniority = rng.choice(_STUDENTS)
        traits.update(title=title, seniority=seniority, email_domain=rng.choice(_SCHOOLS))
    return traits


def _traits(rng: random.Random, icp: bool, index: int) -> dict[str, Any]:
    """Firmographics: ICP contacts mostly match the default model's fit rules, others rarely."""
    share = 0.85 if icp else 0.25  # how often each trait matches the ICP

    def fits() -> bool:
        return rng.random() < share

    title, seniority = rng.choice(_SENIOR if fits() else _JUNIOR)
    if fits():
        size = rng.choice((rng.randint(50, 199), rng.randint(200, 999), rng.randint(1000, 9000)))
    else:
        size = rng.choice((rng.randint(1, 49), rng.randint(10_001, 200_000)))
    domain = f"company{index}.example"
    roll = rng.random()
    if roll < (0.03 if icp else 0.2):
        domain = rng.choice(_FREE)
    elif roll > 0.995:
        domain = rng.choice(_COMPETITORS)
    return {
        "industry": rng.choice(_TARGET_INDUSTRIES if fits() else _OTHER_INDUSTRIES),
        "title": title,
        "seniority": seniority,
        "company_size": size,
        "country": rng.choice(_TARGET_COUNTRIES if fits() else _OTHER_COUNTRIES),
        "email_domain": domain,
    }


def _allocate(total: int, weights: Sequence[float], rng: random.Random) -> list[int]:
    """Split ``total`` events over contacts: one identify each, the rest by weight (exact sum)."""
    counts = [1] * len(weights)
    extra = total - len(weights)
    if extra <= 0:
        return counts
    cumulative = list(accumulate(weights))
    for index in rng.choices(range(len(weights)), cum_weights=cumulative, k=extra):
        counts[index] += 1
    return counts


_UNSUBSCRIBE = "(unsubscribe)"


def _timeline(
    profile: _Profile, count: int, seed: int
) -> Iterator[tuple[float, int, dict[str, Any]]]:
    """The contact's records as (seconds, contact index, record), oldest first.

    Each contact draws from its own generator, seeded from (seed, index), so the output does
    not depend on the order in which the merge happens to ask the contacts for records.
    """
    rng = random.Random(seed * 1_000_003 + profile.index)
    for number, (offset, name) in enumerate(_plan(rng, profile, count)):
        at = HISTORY_START + timedelta(seconds=round(offset))
        message_id = f"synth-{seed}-{profile.index}-{number}"
        yield offset, profile.index, _record(rng, profile, name, at, message_id)


def _plan(rng: random.Random, profile: _Profile, count: int) -> list[tuple[float, str | None]]:
    """Identify first, then behaviours clustered around the contact's peak of interest."""
    end = _DAYS * 86_400.0
    span = max(end - profile.start, 86_400.0)
    times = sorted(_moment(rng, profile, span, end) for _ in range(count - 1))
    behaviours = _BEHAVIOURS + _SIGNALS if profile.signals else _BEHAVIOURS
    # Students read like buyers (pricing, case studies, webinars) but never buy.
    intent = 0.6 if profile.student else profile.intent
    weights = [
        0.01 if profile.student and b.name == "Meeting Booked" else b.base + b.per_intent * intent
        for b in behaviours
    ]
    weights = [max(weight, 0.01) for weight in weights]
    names = rng.choices([b.name for b in behaviours], weights=weights, k=len(times))
    plan: list[tuple[float, str | None]] = [(profile.start, None)]
    plan += zip(times, names, strict=True)
    _add_outcome(rng, profile, plan, names)
    return plan


def _moment(rng: random.Random, profile: _Profile, span: float, end: float) -> float:
    if rng.random() < 0.6:
        moment = rng.gauss(profile.peak, 6 * 86_400)
    else:
        moment = profile.start + rng.random() * span
    return min(max(moment, profile.start + 1), end)


def _add_outcome(
    rng: random.Random,
    profile: _Profile,
    plan: list[tuple[float, str | None]],
    names: Sequence[str],
) -> None:
    """Turn the last record into a rep's qualification or an unsubscribe (count stays exact)."""
    if len(plan) < 3:
        return
    raised = any(n in ("Demo Requested", "Contact Sales Submitted") for n in names)
    fit = 0.5 + 0.5 * profile.icp
    chance = 0.005 + 0.3 * profile.intent**2 * fit + (0.25 if raised else 0.0)
    if profile.student:
        chance = 0.002
    moment = plan[-1][0]
    if rng.random() < chance:
        plan[-1] = (moment, OUTCOME_EVENT)
    elif rng.random() < 0.05:
        plan[-1] = (moment, _UNSUBSCRIBE)


def _properties(rng: random.Random, name: str) -> dict[str, Any]:
    if name == "Page Viewed":
        return {"path": rng.choice(_BLOG)}
    if name == "Pricing Page Viewed":
        return {"path": "/pricing", "plan": rng.choice(("team", "business", "enterprise"))}
    if name == "Case Study Viewed":
        return {"path": f"/customers/story-{rng.randint(1, 12)}"}
    if name.startswith("Email"):
        return {"campaign": f"nurture-{rng.randint(1, 8)}"}
    return {}


def _record(
    rng: random.Random, profile: _Profile, name: str | None, at: datetime, message_id: str
) -> dict[str, Any]:
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record: dict[str, Any] = {
        "userId": profile.user_id,
        "timestamp": stamp,
        "messageId": message_id,
    }
    if name is None:
        return {"type": "identify", **record, "traits": dict(profile.traits)}
    if name == _UNSUBSCRIBE:
        return {"type": "identify", **record, "traits": {"unsubscribed": True}}
    if name == OUTCOME_EVENT:
        properties: dict[str, Any] = {"source": "crm", "stage": "SQL"}
    else:
        properties = _properties(rng, name)
    return {"type": "track", **record, "event": name, "properties": properties}
