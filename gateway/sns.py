"""Amazon SNS message verification, as AWS documents it, and subscription confirmation.

An SNS message is signed with the private key of the certificate at its ``SigningCertURL``:
``SignatureVersion`` 1 is SHA1withRSA, 2 is SHA256withRSA, over "name\\nvalue\\n" lines of the
message's fields in a fixed order (Notification: Message, MessageId, Subject when present,
Timestamp, TopicArn, Type; subscription messages: Message, MessageId, SubscribeURL,
Timestamp, Token, TopicArn, Type). The certificate is fetched over HTTPS, only from a host
matching ``sns_cert_host_pattern`` (in production ``sns.<region>.amazonaws.com``), with TLS
verified (against ``sns_ca_file`` when set, so tests can serve a certificate locally), its
validity dates checked, and cached by URL. A message older than ``sns_max_age_seconds`` is
refused (a captured message cannot be replayed later), as is one from a topic not in
``sns_topic_arns`` when that list is set. A ``SubscriptionConfirmation`` is confirmed by
visiting its ``SubscribeURL`` (same host rule) once its signature checks.
"""

from __future__ import annotations

import base64
import binascii
import re
import ssl
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from revops.settings import Settings

__all__ = ["SnsError", "SnsVerifier", "string_to_sign"]

_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_TYPES = frozenset({"Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"})


class SnsError(Exception):
    """The message is not a genuine, fresh SNS message for us (answered 401)."""


def string_to_sign(message: dict[str, Any]) -> bytes:
    """The bytes SNS signed for ``message`` (fields in AWS's documented order)."""
    kind = message.get("Type")
    fields = _NOTIFICATION_FIELDS if kind == "Notification" else _SUBSCRIPTION_FIELDS
    lines = []
    for name in fields:
        value = message.get(name)
        if value is None:
            if name == "Subject":
                continue
            raise SnsError(f"the SNS message has no {name}")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


class SnsVerifier:
    """Verifies SNS messages; holds the certificate cache and its HTTPS client."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._hosts = re.compile(settings.sns_cert_host_pattern)
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        context = ssl.create_default_context(
            cafile=str(settings.sns_ca_file) if settings.sns_ca_file else None
        )
        self._http = httpx.AsyncClient(verify=context, timeout=settings.http_timeout_seconds)

    async def aclose(self) -> None:
        """Close the HTTPS client."""
        await self._http.aclose()

    async def verify(self, message: dict[str, Any], now: datetime) -> None:
        """Raise SnsError unless ``message`` is signed by SNS, fresh and for our topics."""
        if message.get("Type") not in _TYPES:
            raise SnsError("not an SNS message type")
        version = str(message.get("SignatureVersion", ""))
        if version not in ("1", "2"):
            raise SnsError("SignatureVersion must be 1 or 2")
        self._check_topic(message)
        self._check_age(message, now)
        key = await self._key(str(message.get("SigningCertURL", "")), now)
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except binascii.Error as exc:
            raise SnsError("the signature is not base64") from exc
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 - SNS v1
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), digest)
        except InvalidSignature as exc:
            raise SnsError("the SNS signature does not match") from exc

    async def confirm(self, message: dict[str, Any]) -> None:
        """Visit a verified SubscriptionConfirmation's SubscribeURL."""
        url = self._allowed(str(message.get("SubscribeURL", "")), "SubscribeURL")
        answer = await self._http.get(url)
        answer.raise_for_status()

    def _check_topic(self, message: dict[str, Any]) -> None:
        topics = self._settings.sns_topic_arns
        if topics and message.get("TopicArn") not in topics:
            raise SnsError("the message is from a topic this gateway does not accept")

    def _check_age(self, message: dict[str, Any], now: datetime) -> None:
        try:
            stamp = datetime.fromisoformat(str(message.get("Timestamp", "")))
        except ValueError as exc:
            raise SnsError("the SNS Timestamp is not a time") from exc
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        age = now - stamp
        if age > timedelta(seconds=self._settings.sns_max_age_seconds):
            raise SnsError("the SNS message is too old (replayed?)")
        if age < timedelta(minutes=-5):
            raise SnsError("the SNS message is from the future")

    def _allowed(self, url: str, what: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "https" or not self._hosts.match(parts.hostname or ""):
            raise SnsError(f"{what} is not an https URL of an allowed SNS host")
        return url

    async def _key(self, url: str, now: datetime) -> rsa.RSAPublicKey:
        url = self._allowed(url, "SigningCertURL")
        if not urlsplit(url).path.endswith(".pem"):
            raise SnsError("SigningCertURL must name a .pem certificate")
        cached = self._keys.get(url)
        if cached is not None:
            return cached
        try:
            answer = await self._http.get(url)
            answer.raise_for_status()
            certificate = x509.load_pem_x509_certificate(answer.content)
        except (httpx.HTTPError, ValueError) as exc:
            raise SnsError(f"the signing certificate could not be fetched: {exc}") from exc
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise SnsError("the signing certificate is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsError("the signing certificate has no RSA key")
        self._keys[url] = key
        return key
