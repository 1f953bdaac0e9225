"""The one send path: every outbound effect goes through ``send_effect``, exactly once per key.

The ledger row for the key is claimed before the channel is called and marked sent after, so a
retried activity or a restarted worker finds "sent" and does nothing. The one window left
(the channel accepted, the worker died before the mark) is closed for email by a Message-ID
derived from the key and for webhooks by an ``Idempotency-Key`` header, so receivers can drop
the repeat. Addresses and names are read from the store here; workflows never carry them.
"""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx
from jinja2 import ChainableUndefined
from jinja2.sandbox import SandboxedEnvironment
from temporalio import activity

from models.effects import EffectRequest, EffectResult
from revops.ids import short_hash, sign_token
from revops.logging import get_logger
from revops.settings import Settings
from store.effects import Ledger
from store.repo import Store

__all__ = ["EffectActivities", "Mailer", "SkipEffect", "render"]

log = get_logger(__name__)

_templates = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
# Long header lines (the unsubscribe URL) stay whole instead of becoming RFC 2047 words.
_MAIL_POLICY = email.policy.SMTP.clone(max_line_length=998)


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
    ) -> None:
        self._store = store
        self._ledger = Ledger(store)
        self._settings = settings
        self._http = http
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
        )
        if not claim.proceed:
            return EffectResult(key=request.key, status="duplicate", detail="already sent")
        try:
            detail, subject = await self._dispatch(request)
        except SkipEffect as exc:
            await asyncio.to_thread(self._ledger.finish, request.key, "skipped", str(exc))
            return EffectResult(key=request.key, status="skipped", detail=str(exc))
        await asyncio.to_thread(self._ledger.finish, request.key, "sent", detail)
        log.info("effect_sent", channel=request.channel, key=short_hash(request.key))
        return EffectResult(key=request.key, status="sent", detail=detail, rendered_subject=subject)

    async def _dispatch(self, request: EffectRequest) -> tuple[str, str | None]:
        if request.channel == "email":
            return await self._email(request)
        if request.channel == "sms":
            return await self._sms(request), None
        if request.channel == "webhook":
            return await self._webhook(request), None
        if request.channel == "slack":
            return await self._slack(request), None
        return await self._task(request), None

    def _profile(self, request: EffectRequest) -> dict[str, Any]:
        row = self._store.contact(request.contact_id)
        if row is None:
            raise SkipEffect("unknown contact")
        if request.marketing and (row.consent or {}).get("subscribed") is False:
            raise SkipEffect("contact unsubscribed (consent checked at send time)")
        return {"email": row.email, **(row.traits or {})}

    def _context(self, request: EffectRequest, profile: dict[str, Any]) -> dict[str, Any]:
        return {"contact": profile, **request.context}

    async def _email(self, request: EffectRequest) -> tuple[str, str | None]:
        payload = request.email
        if payload is None:
            raise SkipEffect("email effect without an email payload")
        profile = await asyncio.to_thread(self._profile, request)
        to = payload.to_rep or profile.get("email")
        if not to:
            raise SkipEffect("no email address on file")
        context = self._context(request, profile)
        message = EmailMessage(policy=_MAIL_POLICY)
        message["From"] = self._settings.mail_from
        message["To"] = str(to)
        message["Subject"] = render(payload.subject, context)
        message["Message-ID"] = f"<{short_hash(request.key)}@revops>"
        body = render(payload.body, context)
        if request.marketing:
            link = self._unsubscribe_link(request.contact_id)
            message["List-Unsubscribe"] = f"<{link}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            body += f"\n\n--\nUnsubscribe: {link}\n"
        message.set_content(body)
        if payload.html:
            message.add_alternative(render(payload.html, context), subtype="html")
        await self._mailer(message)
        return f"email to contact {request.contact_id}", str(message["Subject"])

    def _unsubscribe_link(self, contact_id: str) -> str:
        token = sign_token(contact_id, self._settings.id_secret.get_secret_value())
        return f"{self._settings.public_url}/v1/unsubscribe?token={token}"

    async def _smtp(self, message: EmailMessage) -> None:
        settings = self._settings
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        # Serialised here, with our policy: aiosmtplib's own would fold the unsubscribe URL.
        await aiosmtplib.send(
            message.as_bytes(),
            sender=str(message["From"]),
            recipients=[str(message["To"])],
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=password,
            start_tls=settings.smtp_tls,
            timeout=settings.http_timeout_seconds,
        )

    async def _sms(self, request: EffectRequest) -> str:
        if request.sms is None:
            raise SkipEffect("sms effect without an sms payload")
        profile = await asyncio.to_thread(self._profile, request)
        phone = profile.get("phone")
        if not phone:
            raise SkipEffect("no phone number on file")
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
        created = await asyncio.to_thread(
            self._ledger.create_task, request.key, request.contact_id, fields
        )
        if self._settings.crm_webhook_url:
            await self._post(self._settings.crm_webhook_url, {"task": fields}, request)
        return "task created" if created else "task existed"

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
