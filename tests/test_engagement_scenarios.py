"""Provider feedback through the real contact workflow and its journeys: a signed bounce
posted to the gateway stops the journey's next marketing email (and `contacts why` says so);
a soft bounce does not keep a contact out of a marketing journey."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from revops.settings import Settings
from store.effects import Ledger
from store.repo import Store
from tests.email_providers import Keys, sendgrid_bounce
from tests.engagement_support import GUIDE_JOURNEY, daytime_zone, guide_library
from tests.gateway_support import basic_auth, serve_gateway
from tests.sinks import smtp_sink
from tests.support import eventually, running_worker, send, track
from tests.test_cli import _cli_env, _revops

TWO_EMAILS = (
    GUIDE_JOURNEY
    + """
  - {id: pause, wait: 4}
  - id: follow-up
    send: {channel: email, name: Follow-up, subject: "Did the guide help?", body: "Tell us."}
"""
)


async def test_a_signed_bounce_stops_the_journeys_next_email(
    env: WorkflowEnvironment, any_store: Store, settings: Settings, tmp_path: Path
) -> None:
    store = any_store
    who = f"u-bounced-{store.engine.dialect.name}"
    keys = Keys()
    with smtp_sink() as (port, inbox):
        configured = keys.settings(settings).model_copy(
            update={"smtp_port": port, "journeys_dir": guide_library(tmp_path, TWO_EMAILS)}
        )
        async with (
            running_worker(env.client, store, configured) as relay,
            serve_gateway(configured, store, relay) as base,
            httpx.AsyncClient(base_url=base) as http,
        ):
            traits = {"email": f"{who}@acme.io", "first_name": "Ada", "timezone": daytime_zone()}
            await http.post(
                "/v1/identify", json={"userId": who, "traits": traits}, headers=basic_auth()
            )
            await http.post(
                "/v1/track", json={"userId": who, "event": "Guide Requested"}, headers=basic_auth()
            )

            async def received() -> int:
                return len(inbox)

            await eventually(received, lambda n: n == 1, within=60)
            bounce = sendgrid_bounce(keys, str(inbox[0]["Message-ID"]))
            answer = await http.post(
                "/v1/webhooks/email/sendgrid", content=bounce.body, headers=bounce.headers
            )
            environ = {
                **_cli_env(env, configured),
                "REVOPS_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
            }

            async def why() -> str:
                result = await _revops(environ, "contacts", "why", who, "--json")
                assert result.returncode == 0, result.stderr[-2000:]
                return json.dumps(json.loads(result.stdout)["decisions"])

            explained = await eventually(why, lambda text: "hard-bounced" in text, within=60)
            await asyncio.sleep(1)
    assert answer.status_code == 200 and answer.json()["events"] == 1
    assert "hard-bounced" in explained
    assert len(inbox) == 1  # the follow-up was suppressed
    contact_id = store.resolve(who)
    assert contact_id is not None
    assert [row.step for row in Ledger(store).sends(contact_id)] == ["guide"]


async def test_a_soft_bounce_does_not_keep_a_contact_out_of_marketing(
    env: WorkflowEnvironment, store: Store, settings: Settings, tmp_path: Path
) -> None:
    traits = {"email": "soft@acme.io", "first_name": "Ada", "timezone": daytime_zone()}
    soft = {"bounce_type": "soft", "suppress": False, "soft_bounces_in_a_row": 1}
    with smtp_sink() as (port, inbox):
        configured = settings.model_copy(
            update={"smtp_port": port, "journeys_dir": guide_library(tmp_path)}
        )
        async with running_worker(env.client, store, configured) as relay:
            await send(
                store, relay, track("u-soft-flow", "Identify", type_="identify", traits=traits)
            )
            await send(store, relay, track("u-soft-flow", "Email Bounced", properties=soft))
            await send(store, relay, track("u-soft-flow", "Guide Requested"))

            async def received() -> int:
                return len(inbox)

            await eventually(received, lambda n: n == 1, within=60)
    assert inbox[0]["Subject"] == "Your guide, Ada"
