"""Rules decisions per second and latency: 10 journeys + global policies, against a baseline.

The contact workflow asks the rules for a decision on every event and before every send, so
this is the per-decision cost of the rules activity's body, in-process, single thread (the
figure through the activity path is measured separately). The workload mixes what a contact's
life produces: sends (some capped, some at night, some to unsubscribed or sales-held
contacts), events that trigger nothing, triggering events meeting running journeys of their
exclusivity group, list and stage entries, and reviews; each contact carries 30 past events
for entry and exit criteria. The baseline, measured in the same run through the same engine
code, is the trivial decision: one journey, every policy off, one rule (its trigger) firing.
Run: ``.venv/bin/python bench/rules_engine.py [--decisions N]``. Goal: >= 5,000/s, p99 < 5 ms.
(Not ``bench/rules.py``: run as a script, that name would shadow the ``rules`` package, and
mypy would see two modules named ``rules``.)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from models.decisions import (
    ActiveEnrollment,
    ConsentFacts,
    DecisionRequest,
    EventOccurred,
    ListEntered,
    Occurrence,
    Review,
    SendRequested,
    StageEntered,
)
from models.facts import ContactFacts, EventRecord
from revops.enrollment import JourneyEnrollment, parse_enrollment
from revops.policies import Policies, parse_policies
from rules import RulesEngine, compile_rules, live_sessions

GOAL_PER_SECOND = 5_000
GOAL_P99_MS = 5.0
ROUNDS = 3
T0 = datetime(2025, 3, 3, 14, 0, tzinfo=UTC)
ZONES = ("America/New_York", "Europe/London", "Asia/Tokyo", "America/Los_Angeles", "UTC")
PAGES = ("Pricing Page Viewed", "Case Study Viewed", "Email Opened", "Page Viewed")
MQL = {"stage": {"at_least": "MQL"}}
ICP = {"trait": "industry", "in": ["Software", "Fintech"]}

JOURNEYS: list[dict[str, Any]] = [
    {
        "name": "Demo Follow-up",
        "trigger": {"event": "Demo Requested"},
        "category": "demo_ready",
        "exclusivity_group": "main",
        "marketing": False,
        "reenrollment": "every_time",
    },
    {
        "name": "Contact Sales Follow-up",
        "trigger": {"event": "Contact Sales"},
        "priority": 85,
        "exclusivity_group": "main",
        "marketing": False,
        "reenrollment": {"once_per_days": 7},
    },
    {
        "name": "Trial Onboarding",
        "trigger": {"event": "Trial Started", "properties": {"plan": "pro"}},
        "category": "trial",
        "exclusivity_group": "main",
        "on_preempt": "pause",
        "exit": {"event": "Subscription Purchased"},
    },
    {
        "name": "Whitepaper Nurture",
        "trigger": {"event": "Content Downloaded"},
        "category": "nurture",
        "exclusivity_group": "main",
        "exit": MQL,
        "reenrollment": {"once_per_days": 30},
    },
    {
        "name": "Pricing Engaged",
        "trigger": {"list": "Pricing Engaged ICP"},
        "priority": 40,
        "exclusivity_group": "main",
        "entry": {"all": [ICP, {"event": "Pricing Page Viewed", "at_least": 2, "within": "7d"}]},
        "exit": MQL,
    },
    {
        "name": "Webinar Sequence",
        "trigger": {"event": "Webinar Registered"},
        "category": "nurture",
        "priority": 30,
        "exclusivity_group": "events",
        "reenrollment": "every_time",
    },
    {
        "name": "Re-nurture",
        "trigger": {"list": "Re-nurture"},
        "priority": 20,
        "exclusivity_group": "events",
        "reenrollment": {"once_per_days": 90},
    },
    {
        "name": "ABM Account Play",
        "trigger": {"list": "Engaged Accounts"},
        "priority": 60,
        "exclusivity_group": "abm",
        "entry": ICP,
    },
    {
        "name": "Customer Onboarding",
        "trigger": {"stage": "Customer"},
        "priority": 70,
        "marketing": False,
        "acquisition": False,
    },
    {
        "name": "Product Newsletter",
        "trigger": {"event": "Signed Up"},
        "priority": 5,
        "reenrollment": "every_time",
    },
]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000, help="decisions per workload")
    return parser.parse_args()


def _history(i: int, now: datetime) -> list[EventRecord]:
    """30 past behaviours over 60 days: what entry/exit criteria look at."""
    return [
        EventRecord(name=PAGES[(i + k) % len(PAGES)], at=now - timedelta(hours=48 * k + i % 13 + 1))
        for k in range(30)
    ][::-1]


def _occurrence(i: int) -> Occurrence:
    """The realistic mix: 45% sends, 25% idle events, 20% triggers, 5% lists/stages, 5% review."""
    slot = i % 20
    journeys = [j["name"] for j in JOURNEYS]
    if slot < 9:
        return SendRequested(
            journey=journeys[(i // 20) % len(journeys)],
            step=f"step-{i % 6}",
            transactional=slot == 8,
        )
    if slot < 14:
        return EventOccurred(name=PAGES[i % len(PAGES)], properties={"path": f"/p/{i % 50}"})
    if slot < 18:
        triggers = ["Demo Requested", "Trial Started", "Content Downloaded", "Webinar Registered"]
        return EventOccurred(name=triggers[i % 4], properties={"plan": ("pro", "free")[i % 2]})
    if slot == 18:
        lists = ("Pricing Engaged ICP", "Re-nurture", "Engaged Accounts")
        return ListEntered(list=lists[i % 3]) if i % 2 else StageEntered(stage="Customer")
    return Review()


def _running(i: int, now: datetime) -> list[ActiveEnrollment]:
    """Half the contacts are in a journey of the main group, some also in an events one."""
    running = []
    if i % 2:
        name, priority = (("Trial Onboarding", 50), ("Whitepaper Nurture", 10))[i % 4 // 2]
        running.append(
            ActiveEnrollment(
                journey=name,
                version=1,
                priority=priority,
                exclusivity_group="main",
                enrolled_at=now - timedelta(days=3),
            )
        )
    if i % 5 == 0:
        running.append(
            ActiveEnrollment(
                journey="Webinar Sequence",
                version=1,
                priority=30,
                exclusivity_group="events",
                enrolled_at=now - timedelta(days=1),
            )
        )
    return running


def realistic_requests(count: int) -> list[DecisionRequest]:
    """``count`` varied requests (deterministic), built before timing starts."""
    requests = []
    for i in range(count):
        now = T0 + timedelta(minutes=37 * i)
        contact = ContactFacts(
            contact_id=f"c-{i % 997}",
            now=now,
            stage=("Lead", "MQL", "Subscriber", "Customer")[i % 7 % 4],
            traits={"industry": ("Software", "Retail", "Fintech")[i % 3], "company_size": 250},
            scores={"fit": 55.0, "engagement": 30.0 + i % 40},
            lists=frozenset({"Pricing Engaged ICP"} if i % 3 == 0 else ()),
            events=_history(i, now),
        )
        requests.append(
            DecisionRequest(
                contact=contact,
                time_zone=ZONES[i % len(ZONES)],
                consent=ConsentFacts(unsubscribed=i % 23 == 0, gdpr_consent=None),
                is_competitor=i % 97 == 0,
                active_enrollments=_running(i, now),
                last_sales_activity_at=now - timedelta(days=i % 40),
                recent_marketing_sends=[now - timedelta(hours=30 * k + 2) for k in range(i % 5)],
                occurrence=_occurrence(i),
            )
        )
    return requests


BASELINE_JOURNEY = {
    "name": "Baseline",
    "trigger": {"event": "Ping"},
    "priority": 1,
    "reenrollment": "every_time",
}


def baseline_requests(count: int) -> list[DecisionRequest]:
    """The trivial decision: one event, one trigger rule fires, nothing else to check."""
    return [
        DecisionRequest(
            contact=ContactFacts(contact_id=f"c-{i}", now=T0 + timedelta(minutes=i)),
            occurrence=EventOccurred(name="Ping"),
        )
        for i in range(count)
    ]


def _policies_off() -> Policies:
    """Every global policy switched off, so the baseline engine has nothing to derive."""
    return parse_policies(
        {
            "suppression": {
                "require_subscription": False,
                "honour_unsubscribe": False,
                "require_gdpr_consent": False,
                "ccpa_opt_out_blocks_marketing": False,
                "hard_bounce": False,
                "spam_complaint": False,
                "competitors": False,
                "sales_activity_days": 0,
                "customers_leave_acquisition": False,
            },
            "frequency_cap": {"enabled": False},
            "quiet_hours": {"enabled": False},
            "hand_raiser": {"events": []},
        }
    )


def _round(engine: RulesEngine, requests: Sequence[DecisionRequest]) -> dict[str, float]:
    """One timed pass: wall and CPU decisions per second, per-decision p50/p99 in ms."""
    latencies = []
    clock = time.perf_counter_ns
    cpu_started, started = time.process_time(), clock()
    for request in requests:
        before = clock()
        engine.decide(request)
        latencies.append(clock() - before)
    elapsed, cpu = (clock() - started) / 1e9, time.process_time() - cpu_started
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "per_second": len(requests) / elapsed,
        "per_cpu_second": len(requests) / cpu,
        "p50_ms": cuts[49] / 1e6,
        "p99_ms": cuts[98] / 1e6,
        "rules": float(len(engine.rule_names)),
    }


def measure(engine: RulesEngine, requests: Sequence[DecisionRequest]) -> dict[str, float]:
    """The best of ROUNDS passes (the machine is shared; the best pass is the least disturbed)."""
    for request in requests[:500]:  # warm caches and the allocator first
        engine.decide(request)
    rounds = [_round(engine, requests) for _ in range(ROUNDS)]
    return max(rounds, key=lambda figures: figures["per_second"])


def _line(label: str, figures: dict[str, float]) -> str:
    return (
        f"{label:<34} {figures['per_second']:>7,.0f}/s ({figures['per_cpu_second']:>6,.0f}/s CPU)"
        f"   p50 {figures['p50_ms']:.3f} ms   p99 {figures['p99_ms']:.3f} ms"
        f"   ({figures['rules']:.0f} rules)"
    )


def main() -> None:
    """Build both workloads, measure both in this run, print figures, ratio and verdict."""
    args = _arguments()
    journeys: list[JourneyEnrollment] = [parse_enrollment(j, "bench") for j in JOURNEYS]
    realistic = compile_rules(journeys, Policies())
    trivial = compile_rules([parse_enrollment(BASELINE_JOURNEY, "bench")], _policies_off())
    base = measure(trivial, baseline_requests(args.decisions))
    real = measure(realistic, realistic_requests(args.decisions))
    print(
        f"rules bench: {args.decisions:,} decisions per workload, best of {ROUNDS} rounds, "
        "one thread, in-process"
    )
    print(_line("baseline (one rule fires)", base))
    print(_line(f"realistic ({len(JOURNEYS)} journeys + policies)", real))
    print(f"ratio: realistic runs at {real['per_second'] / base['per_second']:.2f}x the baseline")
    fast = real["per_second"] >= GOAL_PER_SECOND
    tight = real["p99_ms"] < GOAL_P99_MS
    print(
        f"goal >= {GOAL_PER_SECOND:,}/s: {'met' if fast else 'MISSED'}; "
        f"p99 < {GOAL_P99_MS:g} ms: {'met' if tight else 'MISSED'}; "
        f"live sessions after: {live_sessions()}"
    )


if __name__ == "__main__":
    main()
