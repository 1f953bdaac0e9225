"""One duration grammar: lists, journeys, scoring and routing read and refuse durations alike."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from audience.conditions import parse_condition
from definitions import ROUTING, read_file
from handoff.business_time import BusinessCalendar
from handoff.routing import SlaDuration
from revops.durations import BUSINESS, WALL_CLOCK, format_duration, to_timedelta
from revops.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_a_condition_and_a_routing_file_refuse_a_bad_duration_in_the_same_words(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as condition:
        parse_condition({"event": "X", "within": "3x"}, where="lists.yaml: lists[0].when")
    assert str(condition.value) == (
        "lists.yaml: lists[0].when.within: '3x' is not a duration (use 30m, 12h, 7d, 2w)"
    )
    data = yaml.safe_load((REPO / "config" / "routing.yaml").read_text(encoding="utf-8"))
    data["sla"]["policies"][0]["first_touch"] = "3x"
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError) as routing:
        read_file(ROUTING, path)
    assert f"{path}: sla.policies[0].first_touch" in str(routing.value)
    assert "'3x' is not a duration (use 30m, 12h, 1bd)" in str(routing.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.5h", SlaDuration(hours=1.5)), ("15 mins", SlaDuration(minutes=15))],
)
def test_sla_windows_take_fractions_and_words(text: str, expected: SlaDuration) -> None:
    assert SlaDuration.model_validate(text) == expected


def test_sla_windows_have_no_calendar_days() -> None:
    with pytest.raises(ValueError, match="'2d' is not a duration"):
        SlaDuration.model_validate("2d")


def test_a_business_day_is_written_like_any_other_duration() -> None:
    calendar = BusinessCalendar(name="x", timezone="UTC", business_day="7.5 hours")
    assert calendar.business_day_length() == timedelta(hours=7.5)
    iso = BusinessCalendar(name="x", timezone="UTC", business_day="PT6H")
    assert iso.business_day_length() == timedelta(hours=6)


def test_list_and_journey_durations_are_whole_and_compact() -> None:
    for text in ("1.5d", "2 days", "1bd"):
        with pytest.raises(ValueError, match="is not a duration"):
            to_timedelta(text)
    assert BUSINESS.read("2 business days") == (2.0, "bd")
    assert WALL_CLOCK.read("2 business days") is None


@given(seconds=st.integers(min_value=1, max_value=10**8))
def test_a_duration_written_back_reads_as_the_same_duration(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert to_timedelta(format_duration(delta)) == delta
