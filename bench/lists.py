"""Cost of recomputing list memberships on every event: 50 lists against a 1-list baseline.

Each contact event makes the contact workflow call ``evaluate_memberships`` (all dynamic lists
plus the next window expiry), so this is the per-event CPU the lists add to a workflow task.
Run: ``.venv/bin/python bench/lists.py``. Figures are in-process microseconds per event, the
best of several rounds, over a 120-day timeline of 400 events.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from audience.facts import ContactFacts, EventRecord
from audience.lists import ListsConfig, evaluate_memberships

EVENTS = (
    "Pricing Page Viewed",
    "Demo Requested",
    "Case Study Viewed",
    "Integration Docs Viewed",
    "Security Page Viewed",
    "Email Opened",
    "Webinar Attended",
    "Signed Up",
    "Contact Sales Submitted",
)
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
TIMELINE_EVENTS = 400
PATH_FILTER = {"path": {"contains": "/"}}
ROUNDS = 5


def _list(index: int) -> dict[str, Any]:
    """One of five realistic shapes, varied by index (deterministic, no randomness)."""
    event = EVENTS[index % len(EVENTS)]
    shape = index % 5
    when: dict[str, Any]
    if shape == 0:
        when = {"trait": "company_size", "gte": 50 * index}
    elif shape == 1:
        when = {"event": event, "at_least": 1 + index % 3, "within": f"{3 + index % 20}d"}
    elif shape == 2:
        when = {
            "all": [
                {"trait": "industry", "in": ["Software", "Fintech"]},
                {"event": event, "at_least": 2, "within": "7d", "where": PATH_FILTER},
            ]
        }
    elif shape == 3:
        when = {"any": [{"list": f"L{index - 1}"}, {"event": event, "at_most": 0, "within": "30d"}]}
    else:
        when = {"all": [{"stage": {"at_least": "Lead"}}, {"not": {"list": f"L{index - 2}"}}]}
    return {"name": f"L{index}", "when": when}


def config_with(count: int) -> ListsConfig:
    """``count`` dynamic lists (the 1-list baseline is a single windowed event list)."""
    if count == 1:
        lists = [{"name": "L1", "when": {"event": "Pricing Page Viewed", "within": "7d"}}]
    else:
        lists = [_list(i) for i in range(count)]
    return ListsConfig.model_validate({"version": 1, "lists": lists})


def timeline() -> list[ContactFacts]:
    """The contact as it looks when each event arrives (history up to and including it)."""
    step = timedelta(days=120) / TIMELINE_EVENTS
    events = [
        EventRecord(name=EVENTS[(i * 7) % len(EVENTS)], at=T0 + i * step, properties={"path": "/x"})
        for i in range(TIMELINE_EVENTS)
    ]
    traits = {"industry": "Software", "company_size": 700, "seniority": "VP"}
    return [
        ContactFacts(contact_id="c1", now=e.at, traits=traits, stage="Lead", events=events[: i + 1])
        for i, e in enumerate(events)
    ]


def per_event_us(config: ListsConfig, snapshots: list[ContactFacts]) -> float:
    """Best-of-rounds microseconds per ``evaluate_memberships`` call."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for facts in snapshots:
            evaluate_memberships(config, facts)
        best = min(best, time.perf_counter() - start)
    return best / len(snapshots) * 1e6


def main() -> None:
    """Print the baseline, the 50-list figure and their ratio."""
    snapshots = timeline()
    baseline = per_event_us(config_with(1), snapshots)
    fifty = per_event_us(config_with(50), snapshots)
    print(f"timeline: {TIMELINE_EVENTS} events over 120 days, best of {ROUNDS} rounds")
    print(f"baseline  1 list : {baseline:9.1f} us/event")
    print(f"         50 lists: {fifty:9.1f} us/event  ({fifty / 50:.1f} us per list)")
    print(f"ratio 50/1       : {fifty / baseline:9.1f}x")


if __name__ == "__main__":
    main()
