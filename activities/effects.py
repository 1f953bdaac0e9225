"""The one send path: every outbound effect goes through ``send_effect``, exactly once per key.

The ledger row for the key is claimed before the channel is called and marked sent after, so a
retried activity or a restarted worker finds "sent" and does nothing. The one window left
(the channel accepted, the worker died before the mark) is closed for email by a Message-ID
derived from the key and for webhooks by an ``Idempotency-Key`` header, so receivers can drop
the repeat. Addresses and names are read from the store here; workflows never carry them.

Email is composed by ``activities.mail`` (Date, Message-ID on the From domain, text and HTML
parts, one-click unsubscribe, tracked links and open pixel for marketing) and goes out over
the worker's pooled SMTP connections (``activities.smtp``). The ledger row keeps the
Message-ID and the journey, step and variant, so provider events and clicks find their send.
Marketing email to an address that hard-bounced or complained is skipped here too, at once,
whatever the journey decided before, and so is any email or SMS to the address of an erased
person (its hash stays on the suppression list: docs/privacy.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx
from jinja2 import ChainableUndefined
from jinja2.sandbox import SandboxedEnvironment
from temporalio import activity

from activities.mail import MailParts, compose, envelope_sender, message_id_for
from activities.smtp import SmtpPool
from audience.consent import Consent
from audience.purposes import DOUBLE_OPT_IN_LIST, allows
from crm.records import CrmSnapshot, CrmTask
from definitions import CRM, Definitions
from journeys.definition import EmailTracking
from models.effects import EffectRequest, EffectResult
from models.tracking import TrackingToken
from revops.ids import short_hash, sign_payload, sign_token
from revops.logging import get_logger
from revops.metrics import SENDS
from revops.settings import Settings
from store.crm import CrmBook
from store.effects import Ledger, SendOrigin
from store.erase import Privacy
from store.history import History
from store.journeys import JourneyLog
from store.repo import Store

__all__ = ["CONFIRM_PURPOSE", "EffectActivities", "Mailer", "SkipEffect", "render"]

CONFIRM_PURPOSE = "double-opt-in"
"""The purpose double opt-in links are signed for (``revops.ids.sign_payload``)."""

log = get_logger(__name__)

_templates = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)


Mailer = Callable[[EmailMessage], Awaitable[None]]
"""Delivers a finished message; SMTP by default, a recorder in ``revops journeys simulate``."""


def render(template: str, context: dict[str, Any]) -> str:
    """Render a Jinja2 template in a sandbox; missing values render empty."""
    return _templates.from_string(template).render(**context)


class SkipEffect(Exception):
    """The effect cannot apply (no address, no consent); recorded as skipped, not retried."""


class EffectActivities:
    """Channels behind one idempotent activity; dependencies are given at construction."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        http: httpx.AsyncClient,
        mailer: Mailer | None = None,
        definitions: Definitions | None = None,
    ) -> None:
        self._store = store
        self._ledger = Ledger(store)
        self._journeys = JourneyLog(store)
        self._privacy = Privacy(store)
        self._history = History(store)
        self._crm = CrmBook(store)
        self._settings = settings
        self._http = http
        self._definitions = definitions
        self.smtp = SmtpPool(settings)
        self._mailer = mailer or self._smtp

    @activity.defn(name="send_effect")
    async def send_effect(self, request: EffectRequest) -> EffectResult:
        """Perform ``request`` unless its key was already sent."""
        # Store calls run in a thread: a slow database must not stall the worker's event loop.
        claim = await asyncio.to_thread(
            self._ledger.claim,
            request.key,
            request.contact_id,
            request.channel,
            request.marketing,
            request.summary,
            self._origin(request),
        )
        if not claim.proceed:
            SENDS.labels(request.channel, "duplicate").inc()
            return EffectResult(key=request.key, status="duplicate", detail="already sent")
        try:
            detail = await self._dispatch(request)
        except SkipEffect as exc:
            await asyncio.to_thread(self._ledger.finish, request.key, "skipped", str(exc))
            SENDS.labels(request.channel, "skipped").inc()
            return EffectResult(key=request.key, status="skipped", detail=str(exc))
        except Exception as exc:
            # The ledger says the last attempt failed (the journey error rate reads it); a
            # retry that succeeds marks it sent. Temporal retries the activity.
            await asyncio.to_thread(self._ledger.finish, request.key, "failed", str(exc))
            SENDS.labels(request.channel, "failed").inc()
            raise
        await asyncio.to_thread(self._ledger.finish, request.key, "sent", detail)
        SENDS.labels(request.channel, "sent").inc()
        log.info("effect_sent", channel=request.channel, key=short_hash(request.key))
        # No rendered subject in the result: it may name the person, and an activity result
        # is kept in the workflow's history (docs/privacy.md). The journey keeps the template.
        return EffectResult(key=request.key, status="sent", detail=detail)

    async def _dispatch(self, request: EffectRequest) -> str:
        if request.channel == "email":
            return await self._email(request)
        if request.channel == "sms":
            return await self._sms(request)
        if request.channel == "webhook":
            return await self._webhook(request)
        if request.channel == "slack":
            return await self._slack(request)
        if request.channel == "in_app":
            return await self._in_app(request)
        if request.channel == "crm":
            return await self._crm_push(request)
        return await self._task(request)

    def _origin(self, request: EffectRequest) -> SendOrigin:
        """The ledger's record of where an email comes from (nothing for other channels)."""
        if request.channel != "email":
            return SendOrigin()
        context = request.context
        journey = _text_or_none(context.get("journey"))
        parts = request.key.split("/")
        return SendOrigin(
            message_id=self._message_id(request),
            enrollment_id=parts[1] if journey and len(parts) >= 3 else None,
            journey=journey,
            step=_text_or_none(context.get("step")),
            variant=_text_or_none(context.get("variant")),
        )

    def _message_id(self, request: EffectRequest) -> str:
        return message_id_for(short_hash(request.key), self._settings)

    def _profile(self, request: EffectRequest) -> dict[str, Any]:
        row = self._store.contact(request.contact_id)
        if row is None:
            raise SkipEffect("unknown contact")
        if request.marketing and (row.consent or {}).get("subscribed") is False:
            raise SkipEffect("contact unsubscribed (consent checked at send time)")
        return {"email": row.email, **(row.traits or {})}

    def _consent(self, contact_id: str) -> Consent:
        """The contact's consent as the store keeps it (per purpose: ``audience.purposes``)."""
        row = self._store.contact(contact_id)
        return Consent.model_validate((row.consent if row is not None else None) or {})

    def _context(self, request: EffectRequest, profile: dict[str, Any]) -> dict[str, Any]:
        return {"contact": profile, **request.context}

    async def _email(self, request: EffectRequest) -> str:
        payload = request.email
        if payload is None:
            raise SkipEffect("email effect without an email payload")
        profile = await asyncio.to_thread(self._profile, request)
        to = payload.to_rep or profile.get("email")
        if not to:
            raise SkipEffect("no email address on file")
        if payload.to_rep is None:
            await asyncio.to_thread(self._check_not_erased, "email", str(to))
        if request.marketing:
            await asyncio.to_thread(self._check_deliverable, request.contact_id)
            await asyncio.to_thread(self._check_double_opt_in, request.contact_id)
        context = {**self._context(request, profile), "confirm_url": self._confirm_link(request)}
        tracking = await asyncio.to_thread(self._tracking, request)  # may read definitions
        parts = MailParts(
            to=str(to),
            subject=render(payload.subject, context),
            text=render(payload.body, context),
            html=render(payload.html, context) if payload.html else None,
            marketing=request.marketing,
            unsubscribe=self._unsubscribe_link(request.contact_id) if request.marketing else None,
            track_opens=tracking.opens,
            track_clicks=tracking.clicks,
        )
        now = datetime.now(UTC)
        message_id = self._message_id(request)
        token = TrackingToken(
            message_id=message_id.strip("<>"),
            contact_id=request.contact_id,
            sent_at=int(now.timestamp()),
            journey=_text_or_none(request.context.get("journey")),
            step=_text_or_none(request.context.get("step")),
            variant=_text_or_none(request.context.get("variant")),
        )
        message = compose(
            parts, settings=self._settings, message_id=message_id, now=now, token=token
        )
        await self._mailer(message)
        return f"email to contact {request.contact_id}"

    def _check_deliverable(self, contact_id: str) -> None:
        """No marketing to an address that hard-bounced or complained (checked at send)."""
        facts = self._journeys.deliverability(contact_id)
        if facts.hard_bounced:
            raise SkipEffect("address suppressed: it bounced (hard, or soft too often)")
        if facts.spam_complaint:
            raise SkipEffect("address suppressed: spam complaint")

    def _check_double_opt_in(self, contact_id: str) -> None:
        """No marketing email before a double opt-in the contact's country asks for."""
        if DOUBLE_OPT_IN_LIST in self._history.lists_of(contact_id):
            raise SkipEffect(f"consent: awaiting double opt-in (on {DOUBLE_OPT_IN_LIST})")

    def _confirm_link(self, request: EffectRequest) -> str:
        """The double opt-in link (``gateway/consent.py``): signed, names the contact only."""
        secret = self._settings.id_secret.get_secret_value()
        token = sign_payload({"c": request.contact_id}, secret, CONFIRM_PURPOSE)
        return f"{self._settings.recipient_url}/v1/consent/confirm?token={token}"

    def _check_not_erased(self, kind: str, address: str) -> None:
        """Never send to an address of an erased person (a re-import, a new sign-up): the
        erasure keeps its hash on the suppression list (docs/privacy.md)."""
        if self._privacy.address_suppressed(kind, address):
            raise SkipEffect(f"address suppressed: its owner was erased ({kind})")

    def _tracking(self, request: EffectRequest) -> EmailTracking:
        """Opens and clicks are tracked in marketing email when the settings and the
        journey allow it; transactional email is never tracked."""
        settings = self._settings
        if not request.marketing:
            return EmailTracking(opens=False, clicks=False)
        chosen = EmailTracking()
        journey = request.context.get("journey")
        if self._definitions is not None and isinstance(journey, str):
            definition = self._definitions.journeys().get(journey)
            if definition is not None:
                chosen = definition.tracking
        return EmailTracking(
            opens=chosen.opens and settings.track_opens,
            clicks=chosen.clicks and settings.track_clicks,
        )

    def _unsubscribe_link(self, contact_id: str) -> str:
        token = sign_token(contact_id, self._settings.id_secret.get_secret_value())
        return f"{self._settings.recipient_url}/v1/unsubscribe?token={token}"

    async def _smtp(self, message: EmailMessage) -> None:
        # Serialised here, with our policy: aiosmtplib's own would fold the unsubscribe URL.
        await self.smtp.send(
            message.as_bytes(), envelope_sender(self._settings), [str(message["To"])]
        )

    async def _sms(self, request: EffectRequest) -> str:
        if request.sms is None:
            raise SkipEffect("sms effect without an sms payload")
        profile = await asyncio.to_thread(self._profile, request)
        phone = profile.get("phone")
        if not phone:
            raise SkipEffect("no phone number on file")
        consent = await asyncio.to_thread(self._consent, request.contact_id)
        if not allows(consent, "sms"):
            raise SkipEffect("consent: no SMS opt-in (every SMS needs an explicit opt-in)")
        await asyncio.to_thread(self._check_not_erased, "phone", str(phone))
        text = render(request.sms.text, self._context(request, profile))
        if self._settings.sms_provider == "webhook" and self._settings.sms_webhook_url:
            await self._post(self._settings.sms_webhook_url, {"to": phone, "text": text}, request)
            return "sms via webhook provider"
        return f"sms logged (provider 'log'): {len(text)} characters"

    async def _webhook(self, request: EffectRequest) -> str:
        if request.webhook is None:
            raise SkipEffect("webhook effect without a webhook payload")
        body = {"contact_id": request.contact_id, **request.context, **request.webhook.body}
        status = await self._post(request.webhook.url, body, request)
        return f"webhook answered {status}"

    async def _in_app(self, request: EffectRequest) -> str:
        """An in-product message: a signed POST to the product's endpoint, keyed for
        idempotency (``Idempotency-Key``, and ``message_id`` in the body), naming the user by
        the product's own user id; the product shows it and drops a repeated key."""
        payload = request.in_app
        if payload is None:
            raise SkipEffect("in_app effect without an in_app payload")
        url = self._settings.in_app_url
        if not url:
            raise SkipEffect("no in-app endpoint configured (REVOPS_IN_APP_URL)")
        if self._settings.outbound_webhook_secret is None:
            raise SkipEffect("in-app messages are signed: set REVOPS_OUTBOUND_WEBHOOK_SECRET")
        profile = await asyncio.to_thread(self._profile, request)
        user_id = await asyncio.to_thread(self._store.user_id_of, request.contact_id)
        context = self._context(request, profile)
        cta = {"label": payload.cta_label, "url": payload.cta_url} if payload.cta_url else None
        body = {
            "type": "in_app_message",
            "message_id": short_hash(request.key),
            "user_id": user_id,
            "contact_id": request.contact_id,
            "title": render(payload.title, context),
            "body": render(payload.body, context),
            "cta": cta,
        }
        status = await self._post(url, body, request)
        return f"in-app endpoint answered {status}"

    async def _slack(self, request: EffectRequest) -> str:
        payload = request.slack
        if payload is None:
            raise SkipEffect("slack effect without a slack payload")
        url = payload.webhook_url or self._settings.slack_webhook_url
        if not url:
            raise SkipEffect("no Slack webhook configured (REVOPS_SLACK_WEBHOOK_URL)")
        text = render(payload.text, request.context)
        body: dict[str, Any] = {"text": text}
        if payload.blocks:
            body["blocks"] = payload.blocks
        status = await self._post(url, body, request)
        return f"slack answered {status}"

    async def _task(self, request: EffectRequest) -> str:
        payload = request.task
        if payload is None:
            raise SkipEffect("crm_task effect without a task payload")
        fields = {
            "owner": payload.owner,
            "kind": payload.kind,
            "title": render(payload.title, request.context),
            "description": render(payload.description, request.context),
            "due_at": payload.due_at,
            "details": json.loads(json.dumps(request.context, default=str)),
        }
        consent = await asyncio.to_thread(self._consent, request.contact_id)
        if not allows(consent, "sales_contact"):
            fields["details"]["sales_contact"] = "refused"  # the rep sees it on the task
        created = await asyncio.to_thread(
            self._ledger.create_task, request.key, request.contact_id, fields
        )
        await asyncio.to_thread(self._queue_crm_task, request, fields)
        if self._settings.crm_webhook_url:
            await self._post(self._settings.crm_webhook_url, {"task": fields}, request)
        return "task created" if created else "task existed"

    async def _crm_push(self, request: EffectRequest) -> str:
        """Queue the contact's push for the CRM pusher (``activities.crm_sync``): a store write,
        so the contact never waits for the CRM or its rate limits."""
        snapshot = CrmSnapshot.model_validate(request.context.get("crm") or {})
        await asyncio.to_thread(self._crm.enqueue, snapshot)
        return "queued for the CRM: " + ", ".join(snapshot.reasons)

    def _queue_crm_task(self, request: EffectRequest, fields: dict[str, Any]) -> None:
        """With a CRM configured, the task is also created there (by the pusher, once per key,
        on the contact's CRM record)."""
        if self._definitions is None or not self._definitions.get(CRM).enabled:
            return
        task = CrmTask(
            key=short_hash(request.key),
            contact_id=request.contact_id,
            title=str(fields["title"]),
            body=str(fields["description"]),
            owner=str(fields["owner"]) if fields.get("owner") else None,
            due_at=fields.get("due_at"),
        )
        self._crm.enqueue_task(task)

    async def _post(self, url: str, body: dict[str, Any], request: EffectRequest) -> int:
        data = json.dumps(body, default=str, sort_keys=True)
        headers = {"Content-Type": "application/json", "Idempotency-Key": short_hash(request.key)}
        secret = self._settings.outbound_webhook_secret
        if secret is not None:
            stamp = str(int(time.time()))
            mac = hmac.new(
                secret.get_secret_value().encode(), f"{stamp}.{data}".encode(), hashlib.sha256
            ).hexdigest()
            headers["X-Revops-Signature"] = f"t={stamp},v1={mac}"
        response = await self._http.post(url, content=data, headers=headers)
        response.raise_for_status()
        return response.status_code


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
