"""The one send path against a real SMTP server and a real HTTP endpoint: exactly once per key."""

from __future__ import annotations

import hashlib
import hmac
import re
from email.utils import parsedate_to_datetime

import httpx
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from activities.effects import EffectActivities
from models.effects import (
    EffectRequest,
    EmailPayload,
    SlackPayload,
    TaskPayload,
    WebhookPayload,
)
from revops.ids import short_hash, verify_token
from revops.settings import Settings
from store.effects import Ledger
from store.repo import Store
from tests.conftest import ID_SECRET
from tests.sinks import http_sink, part_of, smtp_sink
from tests.support import track


def _contact(store: Store, user_id: str, **traits: object) -> str:
    store.accept([track(user_id, "Identify", type_="identify", traits=traits)])
    contact_id = store.resolve(user_id)
    assert contact_id is not None
    return contact_id


def _email(contact_id: str, key: str, marketing: bool = True) -> EffectRequest:
    return EffectRequest(
        key=key,
        contact_id=contact_id,
        channel="email",
        marketing=marketing,
        email=EmailPayload(
            subject="{{ contact.first_name }}, the case study you asked for",
            body="Hi {{ contact.first_name }} at {{ contact.company }}.",
        ),
    )


async def test_an_email_key_is_delivered_once_with_one_click_unsubscribe(
    store: Store, settings: Settings
) -> None:
    contact = _contact(store, "u-mail", email="ada@acme.io", first_name="Ada", company="Acme")
    with smtp_sink() as (port, inbox):
        async with httpx.AsyncClient() as http:
            effects = EffectActivities(store, settings.model_copy(update={"smtp_port": port}), http)
            env = ActivityEnvironment()
            first = await env.run(effects.send_effect, _email(contact, "c/e1/step-1"))
            again = await env.run(effects.send_effect, _email(contact, "c/e1/step-1"))
    assert (first.status, again.status) == ("sent", "duplicate")
    assert first.rendered_subject is None, "the result (kept in history) names nobody"
    (message,) = inbox
    assert message["Subject"] == "Ada, the case study you asked for"
    assert message["To"] == "ada@acme.io"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = message["List-Unsubscribe"].strip("<>")
    token = link.split("token=")[1]
    assert verify_token(token, ID_SECRET) == contact
    assert "Hi Ada at Acme." in part_of(message, "plain")
    assert Ledger(store).sends(contact)[0].status == "sent"


async def test_transactional_email_has_no_unsubscribe_header(
    store: Store, settings: Settings
) -> None:
    contact = _contact(store, "u-tx", email="tx@acme.io")
    with smtp_sink() as (port, inbox):
        async with httpx.AsyncClient() as http:
            effects = EffectActivities(store, settings.model_copy(update={"smtp_port": port}), http)
            await ActivityEnvironment().run(
                effects.send_effect, _email(contact, "c/tx/1", marketing=False)
            )
    assert inbox[0]["List-Unsubscribe"] is None


async def test_a_contact_without_an_address_is_skipped_with_a_reason(
    store: Store, settings: Settings
) -> None:
    contact = _contact(store, "u-noaddr", first_name="No")
    async with httpx.AsyncClient() as http:
        effects = EffectActivities(store, settings, http)
        result = await ActivityEnvironment().run(effects.send_effect, _email(contact, "k-none"))
    assert result.status == "skipped" and "no email address" in result.detail


async def test_webhooks_are_signed_and_carry_an_idempotency_key(
    store: Store, settings: Settings
) -> None:
    contact = _contact(store, "u-hook")
    secret = "whsec-test"
    configured = settings.model_copy(update={"outbound_webhook_secret": SecretStr(secret)})
    with http_sink() as sink:
        async with httpx.AsyncClient() as http:
            effects = EffectActivities(store, configured, http)
            request = EffectRequest(
                key="c/hook/1",
                contact_id=contact,
                channel="webhook",
                marketing=False,
                webhook=WebhookPayload(url=f"{sink.url}/hook", body={"step": "welcome"}),
            )
            await ActivityEnvironment().run(effects.send_effect, request)
            await ActivityEnvironment().run(effects.send_effect, request)
    (received,) = sink.received
    assert received.json() == {"contact_id": contact, "step": "welcome"}
    stamp, mac = (
        part.split("=", 1)[1] for part in received.headers["X-Revops-Signature"].split(",")
    )
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + received.body, hashlib.sha256)
    assert mac == expected.hexdigest()
    assert received.headers["Idempotency-Key"]


async def test_slack_and_crm_task_effects(store: Store, settings: Settings) -> None:
    contact = _contact(store, "u-rep")
    with http_sink() as sink:
        async with httpx.AsyncClient() as http:
            effects = EffectActivities(store, settings, http)
            env = ActivityEnvironment()
            slack = EffectRequest(
                key="h/1/slack",
                contact_id=contact,
                channel="slack",
                marketing=False,
                context={"score": 80},
                slack=SlackPayload(text="New MQL, score {{ score }}", webhook_url=sink.url),
            )
            task = EffectRequest(
                key="h/1/task",
                contact_id=contact,
                channel="crm_task",
                marketing=False,
                task=TaskPayload(title="Call the new MQL", owner="rep-ana"),
            )
            for request in (slack, task, task):
                await env.run(effects.send_effect, request)
    assert sink.received[0].json() == {"text": "New MQL, score 80"}
    (created,) = Ledger(store).tasks("rep-ana")
    assert created.title == "Call the new MQL" and created.contact_id == contact


async def test_mail_has_a_date_a_message_id_on_the_from_domain_and_both_parts(
    store: Store, settings: Settings
) -> None:
    contact = _contact(store, "u-parts", email="ada@acme.io", first_name="Ada", company="Acme")
    configured = settings.model_copy(update={"mail_from": "Acme News <news@mail.acme.io>"})
    request = _email(contact, "c/e9/step-1")
    request.email = EmailPayload(
        subject="Hi", body="Read https://acme.io/guide?x=1, then reply.\n\nThanks"
    )
    with smtp_sink() as (port, inbox):
        async with httpx.AsyncClient() as http:
            effects = EffectActivities(
                store, configured.model_copy(update={"smtp_port": port}), http
            )
            await ActivityEnvironment().run(effects.send_effect, request)
    (message,) = inbox
    assert message["Message-ID"] == f"<{short_hash('c/e9/step-1')}@mail.acme.io>"
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message.get_content_type() == "multipart/alternative"
    text, html = part_of(message, "plain"), part_of(message, "html")
    assert "then reply." in text and "<p>" in html and "Unsubscribe" in html
    tracked = re.findall(r'href="([^"]+/t/c/[^"]+)"', html)
    assert len(tracked) == 1 and "/t/c/" in text  # the link, in both parts, tracked
    assert re.search(r'<img src="[^"]+/t/o/', html)
    assert (Ledger(store).sends(contact)[0].message_id) == message["Message-ID"]


async def test_transactional_mail_and_journeys_that_opt_out_are_not_tracked(
    store: Store, settings: Settings
) -> None:
    contact = _contact(store, "u-untracked", email="tx@acme.io")
    request = _email(contact, "c/tx/2", marketing=False)
    request.email = EmailPayload(subject="Receipt", body="See https://acme.io/receipt")
    with smtp_sink() as (port, inbox):
        async with httpx.AsyncClient() as http:
            plain = settings.model_copy(update={"smtp_port": port, "track_clicks": False})
            effects = EffectActivities(store, plain, http)
            await ActivityEnvironment().run(effects.send_effect, request)
            marketing = _email(contact, "c/mk/1")
            marketing.email = EmailPayload(subject="News", body="See https://acme.io/news")
            await ActivityEnvironment().run(effects.send_effect, marketing)
    receipt, news = inbox
    assert "/t/" not in part_of(receipt, "html") + part_of(receipt, "plain")
    assert "https://acme.io/news" in part_of(news, "plain")  # clicks off globally
    assert "/t/o/" in part_of(news, "html")  # opens still on


async def test_one_smtp_connection_carries_many_messages_and_is_reopened_when_dropped(
    store: Store, settings: Settings
) -> None:
    contact = _contact(store, "u-pool", email="pool@acme.io")
    with smtp_sink() as (port, inbox):
        configured = settings.model_copy(update={"smtp_port": port, "smtp_connections": 1})
        async with httpx.AsyncClient() as http:
            effects = EffectActivities(store, configured, http)
            for n in range(5):
                await ActivityEnvironment().run(effects.send_effect, _email(contact, f"p/{n}"))
            opened_for_five = effects.smtp.opened
    with smtp_sink(port) as (_, later):  # the server restarted: the kept connection is dead
        async with httpx.AsyncClient() as http:
            effects_after = effects
            await ActivityEnvironment().run(effects_after.send_effect, _email(contact, "p/5"))
    assert (len(inbox), opened_for_five) == (5, 1)
    assert len(later) == 1 and effects.smtp.opened == 2
