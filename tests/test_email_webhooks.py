"""Provider event webhooks over real HTTP: each provider's documented sample bounce, signed with
test keys, suppresses the address (the next marketing email is not sent); a forged or stale
one is refused with a 401 and stores nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.effects import EffectActivities
from models.effects import EffectRequest, EmailPayload
from revops.settings import Settings
from store.engagement import EngagementBook
from store.repo import Store
from store.schema import EventRow
from tests.email_providers import (
    PROVIDERS,
    Keys,
    SignedRequest,
    SnsSigner,
    local_sns,
    mailgun_bounce,
    postmark_bounce,
    sendgrid_bounce,
    ses_bounce,
)
from tests.gateway_support import serve_gateway
from tests.sinks import smtp_sink
from tests.support import track


def _contact(store: Store, user_id: str) -> str:
    traits = {"email": f"{user_id}@acme.io", "first_name": "Ada"}
    store.accept([track(user_id, "Identify", type_="identify", traits=traits)])
    contact_id = store.resolve(user_id)
    assert contact_id is not None
    return contact_id


def _email(contact_id: str, step: str) -> EffectRequest:
    return EffectRequest(
        key=f"{contact_id}/enr-1/{step}",
        contact_id=contact_id,
        channel="email",
        marketing=True,
        context={"journey": "guide-follow-up", "step": step, "variant": None},
        email=EmailPayload(subject="Hello {{ contact.first_name }}", body="Read this."),
    )


def _events(store: Store, contact_id: str) -> list[EventRow]:
    with store._sessions() as session:
        query = select(EventRow).where(EventRow.contact_id == contact_id).order_by(EventRow.id)
        return list(session.scalars(query))


def _builder(provider: str, keys: Keys, sns: SnsSigner) -> Callable[..., SignedRequest]:
    if provider == "ses":
        return lambda message_id, forged=False: ses_bounce(sns, message_id, forged=forged)
    return {
        "sendgrid": lambda message_id, forged=False: sendgrid_bounce(
            keys, message_id, forged=forged
        ),
        "postmark": lambda message_id, forged=False: postmark_bounce(
            keys, message_id, forged=forged
        ),
        "mailgun": lambda message_id, forged=False: mailgun_bounce(keys, message_id, forged=forged),
    }[provider]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_signed_sample_bounce_suppresses_and_a_forged_one_is_refused(
    provider: str, store: Store, settings: Settings, tmp_path: Path
) -> None:
    keys = Keys()
    who = _contact(store, f"u-bounce-{provider}")
    with local_sns(tmp_path) as sns, smtp_sink() as (port, inbox):
        configured = sns.settings(keys.settings(settings)).model_copy(update={"smtp_port": port})
        build = _builder(provider, keys, sns)
        async with httpx.AsyncClient() as client:
            effects = EffectActivities(store, configured, client)
            first = await ActivityEnvironment().run(effects.send_effect, _email(who, "first"))
            message_id = str(inbox[0]["Message-ID"])
            async with serve_gateway(configured, store) as base:
                url = f"{base}/v1/webhooks/email/{provider}"
                forged = build(message_id, forged=True)
                refused = await client.post(url, content=forged.body, headers=forged.headers)
                stored_after_forgery = len(_events(store, who))
                genuine = build(message_id)
                accepted = await client.post(url, content=genuine.body, headers=genuine.headers)
            second = await ActivityEnvironment().run(effects.send_effect, _email(who, "second"))
    assert first.status == "sent"
    assert (refused.status_code, refused.json()["code"]) == (401, "invalid_signature")
    assert stored_after_forgery == 1  # the identify only: nothing from the forged request
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["matched"] == 1 and accepted.json()["events"] == 1
    bounce = _events(store, who)[-1]
    assert bounce.name == "Email Bounced"
    assert bounce.properties["bounce_type"] == "hard" and bounce.properties["suppress"] is True
    assert (
        bounce.properties["journey"] == "guide-follow-up" and bounce.properties["step"] == "first"
    )
    assert (second.status, len(inbox)) == ("skipped", 1)
    assert "suppressed" in second.detail
    (stats,) = EngagementBook(store).stats("guide-follow-up")
    assert (stats.sent, stats.bounced) == (1, 1)


async def test_sns_subscription_is_confirmed_and_both_signature_versions_verify(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    with local_sns(tmp_path) as sns:
        configured = sns.settings(settings)
        async with (
            serve_gateway(configured, store) as base,
            httpx.AsyncClient(base_url=base) as client,
        ):
            confirmed = await client.post("/v1/webhooks/email/ses", json=sns.subscription())
            v1 = await client.post(
                "/v1/webhooks/email/ses", json=sns.notification({"eventType": "Send"}, "1")
            )
            elsewhere = sns.notification({"eventType": "Send"})
            elsewhere["SigningCertURL"] = "https://evil.example.com/cert.pem"
            moved = await client.post("/v1/webhooks/email/ses", json=elsewhere)
            other_topic = sns.envelope(
                {**sns.notification({})} | {"TopicArn": "arn:aws:sns:us-east-1:1:other"}
            )
            foreign = await client.post("/v1/webhooks/email/ses", json=other_topic)
    assert confirmed.status_code == 200 and confirmed.json()["confirmed"] is True
    assert any(path.startswith("/confirm") for path in sns.requested)
    assert v1.status_code == 200, v1.text
    assert (moved.status_code, foreign.status_code) == (401, 401)


async def test_soft_bounces_suppress_only_at_the_limit_in_a_row(
    store: Store, settings: Settings
) -> None:
    keys = Keys()
    who = _contact(store, "u-soft")
    with smtp_sink() as (port, inbox):
        configured = keys.settings(settings).model_copy(
            update={"smtp_port": port, "soft_bounce_limit": 3}
        )
        async with httpx.AsyncClient() as client:
            effects = EffectActivities(store, configured, client)
            async with serve_gateway(configured, store) as base:
                outcomes = []
                for step in ("one", "two", "three", "four"):
                    result = await ActivityEnvironment().run(effects.send_effect, _email(who, step))
                    outcomes.append(result.status)
                    if result.status != "sent":
                        break
                    signed = sendgrid_bounce(keys, str(inbox[-1]["Message-ID"]))
                    soft = signed.body.replace(b'"type": "bounce"', b'"type": "blocked"')
                    again = sendgrid_bounce(keys, "<unused@example.com>")  # fresh signature
                    resigned = _resign(keys, soft, again)
                    answer = await client.post(
                        f"{base}/v1/webhooks/email/sendgrid",
                        content=resigned.body,
                        headers=resigned.headers,
                    )
                    assert answer.status_code == 200, answer.text
    bounces = [e.properties for e in _events(store, who) if e.name == "Email Bounced"]
    assert [b["bounce_type"] for b in bounces] == ["soft", "soft", "soft"]
    assert [b["suppress"] for b in bounces] == [False, False, True]
    assert outcomes == ["sent", "sent", "sent", "skipped"]


def _resign(keys: Keys, body: bytes, template: SignedRequest) -> SignedRequest:
    """``body`` signed with the SendGrid test key (the template gives the timestamp)."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    stamp = template.headers["X-Twilio-Email-Event-Webhook-Timestamp"]
    signature = keys.sendgrid.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        **template.headers,
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
    }
    return SignedRequest(body, headers)


async def test_stale_and_replayed_signatures_are_refused(store: Store, settings: Settings) -> None:
    keys = Keys()
    configured = keys.settings(settings)
    stale = mailgun_bounce(keys, "<x@example.com>", age=3600)
    fresh = mailgun_bounce(keys, "<x@example.com>")
    old_sendgrid = sendgrid_bounce(keys, "<x@example.com>")
    old_sendgrid.headers["X-Twilio-Email-Event-Webhook-Timestamp"] = "1513299569"
    async with serve_gateway(configured, store) as base, httpx.AsyncClient(base_url=base) as client:
        answers = [
            await client.post("/v1/webhooks/email/mailgun", content=stale.body),
            await client.post("/v1/webhooks/email/mailgun", content=fresh.body),
            await client.post("/v1/webhooks/email/mailgun", content=fresh.body),  # replayed
            await client.post(
                "/v1/webhooks/email/sendgrid",
                content=old_sendgrid.body,
                headers=old_sendgrid.headers,
            ),
            await client.post("/v1/webhooks/email/postmark", json={"RecordType": "Bounce"}),
            await client.post("/v1/webhooks/email/unknown", json={}),
        ]
    codes = [a.status_code for a in answers]
    assert codes == [401, 200, 401, 401, 401, 404]
    assert answers[1].json()["unknown"] == 1  # a send this gateway never made: acknowledged
