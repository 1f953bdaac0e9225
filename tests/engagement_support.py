"""Helpers for the engagement tests: a journey library of one email, a daytime contact, links."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from revops.settings import Settings
from tests.sinks import part_of

GUIDE_JOURNEY = """
name: guide-follow-up
description: Send the guide the contact asked for.
trigger: {event: Guide Requested}
category: nurture
marketing: true
steps:
  - id: guide
    send:
      channel: email
      name: The guide
      subject: "Your guide, {{ contact.first_name }}"
      body: |
        Hi {{ contact.first_name }},

        Here is the guide: https://example.com/guide?ref=email
        And our pricing: https://example.com/pricing.
"""

_ZONES = (
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Pacific/Honolulu",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Asia/Dubai",
)


def daytime_zone() -> str:
    """A time zone where it is office hours now (sends are not deferred by quiet hours)."""
    now = datetime.now(UTC)
    for name in _ZONES:
        if 9 <= now.astimezone(ZoneInfo(name)).hour < 18:
            return name
    return "UTC"


def guide_library(tmp_path: Path, text: str = GUIDE_JOURNEY) -> Path:
    """A journeys directory holding only the guide journey."""
    folder = tmp_path / "journeys"
    folder.mkdir(exist_ok=True)
    (folder / "guide-follow-up.yaml").write_text(text, encoding="utf-8")
    return folder


def with_guide(settings: Settings, tmp_path: Path, **changes: object) -> Settings:
    """Settings whose journey library is the guide journey; clicks count at once."""
    return settings.model_copy(
        update={
            "journeys_dir": guide_library(tmp_path),
            "tracking_scanner_seconds": 0.0,
            **changes,
        }
    )


def tracked_links(message: Message) -> list[str]:
    """The tracked click links of a received email's HTML part, in order."""
    html = part_of(message, "html")
    return re.findall(r'href="([^"]*/t/c/[^"]+)"', html)


def pixel_link(message: Message) -> str:
    """The open pixel's URL in the HTML part."""
    found = re.search(r'<img src="([^"]*/t/o/[^"]+)"', part_of(message, "html"))
    assert found is not None, "no open pixel"
    return found.group(1)


def path_of(url: str) -> str:
    """The path of a link (the tests' gateway runs on its own port)."""
    return urlsplit(url).path


BROWSER = {
    "User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Safari/605.1.15"
}
