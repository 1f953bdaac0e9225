"""Tracked clicks and opens, the way a recipient makes them: a journey sends a real email to a
real SMTP server, the test follows its links through the real gateway, and the contact shows
the click and the open (``revops contacts show --json``), its engagement score moved."""

from __future__ import annotations

import json
from email.message import Message
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from gateway.tracking import PIXEL
from revops.settings import Settings
from store.engagement import EngagementBook
from store.repo import Store
from tests.engagement_support import (
    BROWSER,
    daytime_zone,
    path_of,
    pixel_link,
    tracked_links,
    with_guide,
)
from tests.gateway_support import basic_auth, free_port, maybe_state, serve_gateway
from tests.sinks import part_of, smtp_sink
from tests.support import eventually, handle_for, running_worker
from tests.test_cli import _cli_env, _revops


async def _first_email(inbox: list[Message]) -> Message:
    async def probe() -> list[Message]:
        return inbox

    found = await eventually(probe, lambda messages: len(messages) >= 1, within=60)
    return found[0]


async def _request_guide(http: httpx.AsyncClient, user_id: str) -> None:
    traits = {
        "email": f"{user_id}@acme-robotics.com",
        "first_name": "Ada",
        "timezone": daytime_zone(),
    }
    answer = await http.post(
        "/v1/identify", json={"userId": user_id, "traits": traits}, headers=basic_auth()
    )
    assert answer.status_code == 200, answer.text
    answer = await http.post(
        "/v1/track", json={"userId": user_id, "event": "Guide Requested"}, headers=basic_auth()
    )
    assert answer.status_code == 200, answer.text


async def test_a_click_through_the_redirect_and_an_open_show_on_the_contact(
    env: WorkflowEnvironment, any_store: Store, settings: Settings, tmp_path: Path
) -> None:
    store = any_store
    who = f"u-clicks-{store.engine.dialect.name}"  # contact workflows outlive a test
    with smtp_sink() as (port, inbox):
        configured = with_guide(settings, tmp_path, smtp_port=port)
        async with (
            running_worker(env.client, store, configured) as relay,
            serve_gateway(configured, store, relay) as base,
            httpx.AsyncClient(base_url=base) as http,
        ):
            await _request_guide(http, who)
            message = await _first_email(inbox)
            assert message["Subject"] == "Your guide, Ada"
            links = tracked_links(message)
            assert len(links) == 2, part_of(message, "html")
            assert all(link.startswith(configured.public_url) for link in links)
            assert "/t/c/" in part_of(message, "plain")  # the text part's links too
            clicked = await http.get(path_of(links[0]), headers=BROWSER)
            opened = await http.get(path_of(pixel_link(message)), headers=BROWSER)
            again = await http.get(path_of(pixel_link(message)), headers=BROWSER)
            environ = {
                **_cli_env(env, configured),
                "REVOPS_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
                "REVOPS_JOURNEYS_DIR": str(configured.journeys_dir),
            }

            async def shown() -> dict[str, object]:
                result = await _revops(environ, "contacts", "show", who, "--json")
                assert result.returncode == 0, result.stderr[-2000:]
                view: dict[str, object] = json.loads(result.stdout)
                return view

            view = await eventually(
                shown,
                lambda v: {"Email Clicked", "Email Opened"} <= set(v["event_counts"]),  # type: ignore[call-overload]
                within=60,
            )
    assert (clicked.status_code, clicked.headers["location"]) == (
        302,
        "https://example.com/guide?ref=email",
    )
    assert (opened.status_code, opened.content) == (200, PIXEL)
    assert again.status_code == 200
    counts = view["event_counts"]
    assert isinstance(counts, dict)
    assert counts["Email Clicked"] == 1 and counts["Email Opened"] == 1  # two opens, one event
    scores = view["scores"]
    assert isinstance(scores, dict) and scores["engagement"] == 8  # scoring.yaml: open +3, click +5
    (step,) = EngagementBook(store).stats("guide-follow-up")
    assert (step.step, step.sent, step.opened, step.clicked, step.opens) == ("guide", 1, 1, 1, 2)


async def test_a_tampered_or_misused_token_gets_a_400_and_records_nothing(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    with smtp_sink() as (port, inbox):
        configured = with_guide(settings, tmp_path, smtp_port=port)
        async with (
            running_worker(env.client, store, configured) as relay,
            serve_gateway(configured, store, relay) as base,
            httpx.AsyncClient(base_url=base) as http,
        ):
            await _request_guide(http, "u-forged")
            message = await _first_email(inbox)
            link = path_of(tracked_links(message)[0])
            token = link.rsplit("/", 1)[1]
            body, _, mac = token.rpartition(".")
            flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
            pixel_token = path_of(pixel_link(message)).rsplit("/", 1)[1]
            answers = [
                await http.get(f"/t/c/{flipped}.{mac}", headers=BROWSER),
                await http.get(f"/t/c/{body}.{'0' * len(mac)}", headers=BROWSER),
                await http.get(f"/t/c/{pixel_token}", headers=BROWSER),  # an open as a click
                await http.get(f"/t/o/{token}", headers=BROWSER),  # a click as an open
                await http.get("/t/c/not-a-token", headers=BROWSER),
                await http.get(f"/t/c/{'x' * 5000}", headers=BROWSER),
                await http.get(f"/t/c/{body}.%C2%80", headers=BROWSER),  # not ASCII
                await http.get("/v1/unsubscribe?token=c1.%C2%80", headers=BROWSER),
            ]
    assert [a.status_code for a in answers] == [400] * 8
    assert all(a.json()["code"] == "invalid_token" for a in answers)
    assert EngagementBook(store).stats("guide-follow-up")[0].clicked == 0


async def test_a_links_process_serves_recipients_links_and_nothing_else(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    """``revops gateway --role links`` beside the gateway: email links point at it
    (``REVOPS_LINKS_URL``), a click there reaches the contact, ingest stays on the gateway."""
    links_port = free_port()
    with smtp_sink() as (port, inbox):
        configured = with_guide(
            settings, tmp_path, smtp_port=port, links_url=f"http://127.0.0.1:{links_port}/"
        )
        async with (
            running_worker(env.client, store, configured) as relay,
            serve_gateway(configured, store, relay) as base,
            serve_gateway(configured, store, role="links", port=links_port) as links_base,
            httpx.AsyncClient(base_url=base) as http,
            httpx.AsyncClient(base_url=links_base) as links,
        ):
            await _request_guide(http, "u-links")
            message = await _first_email(inbox)
            clicks = tracked_links(message)
            unsubscribe = message["List-Unsubscribe"].strip("<>")
            assert all(link.startswith(f"{links_base}/t/c/") for link in clicks), clicks
            assert unsubscribe.startswith(f"{links_base}/v1/unsubscribe?token=")
            clicked = await links.get(path_of(clicks[0]), headers=BROWSER)
            refused = await links.post(
                "/v1/track", json={"userId": "u-links", "event": "X"}, headers=basic_auth()
            )
            healthy = await links.get("/healthz")
            await eventually(
                lambda: maybe_state(handle_for(env.client, store, "u-links")),
                lambda state: state is not None and "Email Clicked" in state.event_counts,
                within=60,
            )
    assert (clicked.status_code, clicked.headers["location"]) == (
        302,
        "https://example.com/guide?ref=email",
    )
    assert refused.status_code == 404, "ingest is the gateway's, not the links process's"
    assert healthy.status_code == 200
