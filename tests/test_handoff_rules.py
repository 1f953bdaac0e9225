"""The handoff's pure rules: which timer is next, what sales activity means, what notices say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from definitions import HANDOFF, read_file
from handoff.contract import HandoffInput, HandoffState, SalesActivity, TimerKind
from handoff.notice import build_notice, compose
from handoff.routing import RoutingState, Trigger, route, sla_for
from handoff.settings import HandoffSettings
from handoff.sla import (
    CatchUp,
    NoticePlan,
    apply_sales_activity,
    apply_timer,
    due_timer,
    next_wakeup,
    start_turn,
    status_of,
)
from revops.errors import ConfigError
from tests.handoff_support import REPO, handoff_config, handoff_input

NOW = datetime(2026, 6, 9, 14, 0, tzinfo=UTC)  # Tuesday 10:00 in New York
SETTINGS = HandoffSettings()


def _started(trigger: Trigger = "hand_raiser") -> tuple[HandoffState, HandoffInput]:
    config = handoff_config()
    data = handoff_input("c-1", config, trigger=trigger, mql_at=NOW)
    decision = route(config.routing, data.lead, RoutingState(), NOW)
    plan = sla_for(config.routing, data.lead, NOW, decision=decision)
    state = HandoffState()
    start_turn(state, decision, plan, NOW)
    return state, data


def _activity(name: str, at: datetime, **properties: object) -> SalesActivity:
    return SalesActivity(name=name, at=at, properties=properties)


def test_timers_come_in_order_reminder_breach_second_breach_then_the_reply_warning() -> None:
    state, _ = _started()
    fired: list[tuple[TimerKind, timedelta]] = []
    moment = NOW
    while (wake := next_wakeup(state, SETTINGS)) is not None and len(fired) < 4:
        moment = wake
        kind = due_timer(state, moment, SETTINGS)
        assert kind is not None
        fired.append((kind, moment - NOW))
        step = apply_timer(state, kind, moment, SETTINGS)
        if step.reassign:
            break
    assert fired == [
        ("reminder", timedelta(minutes=11, seconds=15)),
        ("breach", timedelta(minutes=15)),
        ("second_breach", timedelta(minutes=30)),
    ]
    assert state.breaches == 2 and state.escalations == 1 and state.sla_met is False


def _catch_up(
    at: datetime, settings: HandoffSettings, catch_up: CatchUp | None
) -> tuple[list[TimerKind], list[str]]:
    """Fire every timer due at ``at`` in one wake-up (workers back after an outage)."""
    state, _ = _started()
    fired: list[TimerKind] = []
    notices: list[str] = []
    while (kind := due_timer(state, at, settings)) is not None and "expire" not in fired:
        fired.append(kind)
        step = apply_timer(state, kind, at, settings, catch_up)
        notices += [plan.kind for plan in step.notices]
        if step.reassign:
            break
    return fired, notices


def test_timers_overdue_together_send_no_stale_reminder_and_one_escalation() -> None:
    """Workers down past the reminder, the breach and the second breach: on restart all three
    fire in one wake-up; the owner's reminder of a passed deadline and a second escalation
    (nobody left to reassign to) are left out. Without ``CatchUp`` (1.0.0) both went out."""
    later = NOW + timedelta(hours=2)
    last = HandoffSettings(max_reassignments=0)
    fired, notices = _catch_up(later, last, CatchUp())
    assert fired[:3] == ["reminder", "breach", "second_breach"]
    assert notices == ["escalation"]
    _, released = _catch_up(later, last, None)
    assert released == ["reminder", "escalation", "escalation"]
    # With a rep left to try, the second breach still reassigns (its notices are the
    # workflow's), after one escalation.
    fired, notices = _catch_up(later, SETTINGS, CatchUp())
    assert fired == ["reminder", "breach", "second_breach"] and notices == ["escalation"]


def test_nothing_is_due_before_its_time() -> None:
    state, _ = _started()
    assert due_timer(state, NOW + timedelta(minutes=11), SETTINGS) is None


def test_a_touch_after_a_breach_is_late_and_stops_the_clock() -> None:
    state, _ = _started()
    apply_timer(state, "breach", NOW + timedelta(minutes=15), SETTINGS)
    later = NOW + timedelta(minutes=20)
    step = apply_sales_activity(state, _activity("Sales Email Sent", later), later, SETTINGS)
    assert step.kind == "touch" and step.changed
    assert (state.state, state.sla_met, state.first_contact_at) == ("breached", False, later)
    pending = next_wakeup(state, SETTINGS)
    assert pending is not None and pending > NOW + timedelta(days=300), "only the expiry is left"


def test_accepting_twice_releases_once_and_later_activity_after_an_outcome_is_ignored() -> None:
    state, _ = _started()
    first = apply_sales_activity(state, _activity("Lead Accepted", NOW), NOW, SETTINGS)
    state.released = first.release
    again = apply_sales_activity(state, _activity("Lead Accepted", NOW), NOW, SETTINGS)
    assert (first.release, first.changed, again.release, again.changed) == (
        True,
        True,
        False,
        False,
    )
    lost = apply_sales_activity(
        state, _activity("Closed Lost", NOW, reason="No Budget"), NOW, SETTINGS
    )
    assert state.outcome == "closed_lost" and state.outcome_reason == "No Budget"
    assert not lost.release, "the lead was released on accept"
    ignored = apply_sales_activity(state, _activity("Closed Won", NOW), NOW, SETTINGS)
    assert not ignored.changed and state.outcome == "closed_lost"


def test_a_sales_clock_running_fast_or_slow_is_kept_between_mql_and_now() -> None:
    state, _ = _started()
    now = NOW + timedelta(minutes=3)
    future = _activity("Sales Call Logged", NOW + timedelta(hours=2))
    apply_sales_activity(state, future, now, SETTINGS)
    assert state.first_contact_at == now
    state, _ = _started()
    past = _activity("Sales Call Logged", NOW - timedelta(days=2))
    apply_sales_activity(state, past, now, SETTINGS)
    assert state.first_contact_at == NOW


def test_unknown_sales_activity_changes_nothing() -> None:
    state, _ = _started()
    step = apply_sales_activity(state, _activity("Opportunity Stage Changed", NOW), NOW, SETTINGS)
    assert step.kind == "other" and not step.changed and state.state == "waiting"


def test_closed_won_asks_for_a_customer_success_notice() -> None:
    state, _ = _started()
    step = apply_sales_activity(state, _activity("Closed Won", NOW, amount=9), NOW, SETTINGS)
    assert [(p.kind, p.to, p.about) for p in step.notices] == [
        ("customer_success", "cs-team", "rep-a02")
    ]
    assert state.sales_context["closed_won"] == {"amount": 9}


def test_an_accepted_lead_never_closed_expires_after_the_close_window() -> None:
    state, _ = _started()
    apply_sales_activity(state, _activity("Lead Accepted", NOW), NOW, SETTINGS)
    wake = next_wakeup(state, SETTINGS)
    assert wake == NOW + timedelta(days=365)
    assert due_timer(state, wake, SETTINGS) == "expire"
    apply_timer(state, "expire", wake, SETTINGS)
    assert (state.outcome, state.state) == ("expired", "closed")


def test_the_sla_status_is_plain_json() -> None:
    state, data = _started()
    status = status_of(data, state)
    dumped = status.model_dump(mode="json")
    assert dumped["owner"] == "rep-a02" and dumped["deadline"] == "2026-06-09T14:15:00Z"
    assert dumped["state"] == "waiting" and dumped["reassign_at"] == "2026-06-09T14:30:00Z"


def test_an_escalation_names_the_owner_and_shows_the_managers_local_time() -> None:
    state, data = _started()
    config = handoff_config()
    apply_timer(state, "breach", NOW + timedelta(minutes=15), SETTINGS)
    plan = NoticePlan("escalation", "mgr-amer", "escalation-0-1", "rep-a02")
    notice = build_notice(plan, data, state, config)
    assert notice is not None and notice.key == "c-1/handoff-c-1-1/escalation-0-1"
    words = compose(notice, "jane@example.com")
    assert words.subject.startswith("SLA breached: rep-a02 has not touched a lead due")
    assert "Tue 09 Jun 10:15 EDT (2026-06-09 14:15 UTC)" in words.subject
    assert "`revops contacts why jane@example.com`" in words.text


def test_the_shipped_handoff_settings_load_and_a_missing_file_means_defaults(
    tmp_path: Path,
) -> None:
    shipped = read_file(HANDOFF, REPO / "config" / "handoff.yaml")
    assert shipped.customer_success.owner == "cs-team" and shipped.max_reassignments == 2
    assert read_file(HANDOFF, tmp_path / "absent.yaml") == HandoffSettings()


def test_a_bad_handoff_setting_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "handoff.yaml"
    path.write_text("notify:\n  owner: [pager]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"handoff.yaml: notify.owner\[0\]"):
        read_file(HANDOFF, path)
