"""A newcomer's first journey email on `revops dev`: caught by the local mail catcher (no
connection-refused retries), listed by `revops mail`, shown with its headers and links by
`revops mail show`, rendered on the gateway's /dev/mail page, its tracked link clickable."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.engagement_support import BROWSER, daytime_zone, guide_library, path_of
from tests.gateway_support import basic_auth
from tests.sinks import free_port

REVOPS = str(Path(sys.executable).parent / "revops")


def _environ(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "REVOPS_DATA_DIR": str(tmp_path / "data"),
        "REVOPS_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "REVOPS_TEMPORAL_UI_PORT": str(free_port()),
        "REVOPS_GATEWAY_PORT": str(free_port()),
        "REVOPS_SMTP_PORT": str(free_port()),
        "REVOPS_JOURNEYS_DIR": str(guide_library(tmp_path)),
        "REVOPS_TRACKING_SCANNER_SECONDS": "0",
        "REVOPS_LOG_LEVEL": "INFO",
    }


def _revops(environ: dict[str, str], *args: str) -> Any:
    result = subprocess.run(
        [REVOPS, *args], env=environ, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.slow
async def test_revops_dev_catches_the_first_journey_email_and_shows_it(tmp_path: Path) -> None:
    environ = _environ(tmp_path)
    base = f"http://127.0.0.1:{environ['REVOPS_GATEWAY_PORT']}"
    log = (tmp_path / "dev.log").open("w+")
    dev = subprocess.Popen(
        [REVOPS, "dev"], env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "revops dev did not start"
                await asyncio.sleep(0.5)
            traits = {"email": "ada@acme.io", "first_name": "Ada", "timezone": daytime_zone()}
            await http.post(
                "/v1/identify", json={"userId": "u-dev", "traits": traits}, headers=basic_auth()
            )
            await http.post(
                "/v1/track",
                json={"userId": "u-dev", "event": "Guide Requested"},
                headers=basic_auth(),
            )
            listed: dict[str, Any] = {"messages": []}
            while not listed["messages"]:
                assert time.monotonic() < deadline + 60, "no mail was caught"
                await asyncio.sleep(1)
                listed = await asyncio.to_thread(_revops, environ, "mail", "--json")
            (line,) = listed["messages"]
            shown = await asyncio.to_thread(
                _revops, environ, "mail", "show", str(line["id"]), "--json"
            )
            page = await http.get(f"/dev/mail/{line['id']}")
            index = await http.get("/dev/mail")
            tracked = [link for link in shown["links"] if "/t/c/" in link]
            clicked = await http.get(path_of(tracked[0]), headers=BROWSER)
    finally:
        os.killpg(dev.pid, signal.SIGINT)
        dev.wait(timeout=60)
        log.seek(0)
        output = log.read()
        log.close()
    assert line["subject"] == "Your guide, Ada" and line["to"] == "ada@acme.io"
    headers = dict(shown["headers"])
    assert headers["Message-ID"].endswith("@example.com>") and "Date" in headers
    assert "Here is the guide" in shown["text"] and "<p>" in shown["html"]
    assert page.status_code == 200 and "Your guide, Ada" in page.text and "srcdoc" in page.text
    assert index.status_code == 200 and f'href="/dev/mail/{line["id"]}"' in index.text
    assert clicked.status_code == 302
    assert clicked.headers["location"] == "https://example.com/guide?ref=email"
    assert "mail catcher" in output
    assert "Connection refused" not in output and "ConnectionRefused" not in output
