"""The ``in_app`` channel: a signed POST with an idempotency key to the product's endpoint.

Against a real local HTTP server (``tests.sinks.http_sink``), through the one send path
(``send_effect``, ledger claim first), so a retried send reaches the product once.
"""

from __future__ import annotations

import hashlib
import hmac

import httpx
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from activities.effects import EffectActivities
from models.effects import EffectRequest, InAppPayload
from revops.ids import short_hash
from revops.settings import Settings
from store.repo import Store
from tests.sinks import http_sink
from tests.support import track

SECRET = "whsec-in-app"


def _request(contact_id: str, key: str = "c/e1/extended-in-app") -> EffectRequest:
    return EffectRequest(
        key=key,
        contact_id=contact_id,
        channel="in_app",
        marketing=False,
        in_app=InAppPayload(
            title="{{ contact.first_name }}, seven more days",
            body="Your evaluation checklist.",
            cta_label="Open",
            cta_url="https://example.com/checklist",
        ),
    )


def _contact(store: Store, user_id: str) -> str:
    traits = {"first_name": "Lee", "email": "lee@acme.io"}
    store.accept([track(user_id, "Identify", type_="identify", traits=traits)])
    contact_id = store.resolve(user_id)
    assert contact_id is not None
    return contact_id


async def test_an_in_app_message_is_posted_once_signed_with_an_idempotency_key(
    store: Store, settings: Settings
) -> None:
    contact = _contact(store, "u-app")
    with http_sink() as product:
        configured = settings.model_copy(
            update={
                "in_app_url": f"{product.url}/messages",
                "outbound_webhook_secret": SecretStr(SECRET),
            }
        )
        async with httpx.AsyncClient() as http:
            effects = EffectActivities(store, configured, http)
            first = await ActivityEnvironment().run(effects.send_effect, _request(contact))
            again = await ActivityEnvironment().run(effects.send_effect, _request(contact))
    assert (first.status, again.status) == ("sent", "duplicate")
    (received,) = product.received
    assert received.path == "/messages"
    assert received.json() == {
        "type": "in_app_message",
        "message_id": short_hash("c/e1/extended-in-app"),
        "user_id": "u-app",
        "contact_id": contact,
        "title": "Lee, seven more days",
        "body": "Your evaluation checklist.",
        "cta": {"label": "Open", "url": "https://example.com/checklist"},
    }
    assert received.headers["Idempotency-Key"] == short_hash("c/e1/extended-in-app")
    stamp, mac = (
        part.split("=", 1)[1] for part in received.headers["X-Revops-Signature"].split(",")
    )
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + received.body, hashlib.sha256)
    assert mac == expected.hexdigest()
    assert "lee@acme.io" not in received.body.decode(), "no address leaves for the product"


async def test_without_an_endpoint_or_a_secret_the_message_is_skipped_with_a_reason(
    store: Store, settings: Settings
) -> None:
    contact = _contact(store, "u-app-2")
    async with httpx.AsyncClient() as http:
        unset = EffectActivities(store, settings, http)
        skipped = await ActivityEnvironment().run(unset.send_effect, _request(contact, "k/1"))
        unsigned = settings.model_copy(update={"in_app_url": "http://127.0.0.1:9/x"})
        effects = EffectActivities(store, unsigned, http)
        refused = await ActivityEnvironment().run(effects.send_effect, _request(contact, "k/2"))
    assert skipped.status == "skipped" and "REVOPS_IN_APP_URL" in skipped.detail
    assert refused.status == "skipped" and "REVOPS_OUTBOUND_WEBHOOK_SECRET" in refused.detail
