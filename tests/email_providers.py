"""Providers' documented sample payloads (tests/fixtures/email), signed as each provider signs
them, with test keys made here: an RSA certificate served over real local HTTPS for SNS, an
ECDSA P-256 key for SendGrid, an HMAC key for Mailgun, credentials for Postmark."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from gateway.sns import string_to_sign
from revops.settings import Settings
from tests.sinks import free_port

FIXTURES = Path(__file__).parent / "fixtures" / "email"
PROVIDERS = ("ses", "sendgrid", "postmark", "mailgun")
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"


def fixture(name: str) -> Any:
    """A documented sample payload."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str, key: rsa.RSAPrivateKey, issuer: str, issuer_key: rsa.RSAPrivateKey, ca: bool
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class SnsSigner:
    """A local 'SNS': its signing certificate served over HTTPS, and what was fetched."""

    base_url: str
    ca_file: Path
    key: rsa.RSAPrivateKey
    requested: list[str] = field(default_factory=list)

    @property
    def cert_url(self) -> str:
        """The SigningCertURL of our messages."""
        return f"{self.base_url}/SimpleNotificationService-test.pem"

    def settings(self, settings: Settings) -> Settings:
        """Settings trusting this local SNS (its host and its CA)."""
        return settings.model_copy(
            update={
                "sns_cert_host_pattern": r"^127\.0\.0\.1$",
                "sns_ca_file": self.ca_file,
                "sns_topic_arns": [TOPIC],
            }
        )

    def envelope(self, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
        """``message`` signed as SNS signs it (SignatureVersion 1 or 2)."""
        signed = {**message, "SignatureVersion": version, "SigningCertURL": self.cert_url}
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(string_to_sign(signed), padding.PKCS1v15(), digest)
        signed["Signature"] = base64.b64encode(signature).decode()
        return signed

    def notification(self, payload: dict[str, Any], version: str = "2") -> dict[str, Any]:
        """An SNS Notification carrying an SES payload."""
        return self.envelope(
            {
                "Type": "Notification",
                "MessageId": str(uuid.uuid4()),
                "TopicArn": TOPIC,
                "Message": json.dumps(payload),
                "Timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "UnsubscribeURL": f"{self.base_url}/unsubscribe",
            },
            version,
        )

    def subscription(self) -> dict[str, Any]:
        """A SubscriptionConfirmation whose SubscribeURL is on this server."""
        return self.envelope(
            {
                "Type": "SubscriptionConfirmation",
                "MessageId": str(uuid.uuid4()),
                "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92",
                "TopicArn": TOPIC,
                "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
                "SubscribeURL": f"{self.base_url}/confirm?Action=ConfirmSubscription",
                "Timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
        )


@contextmanager
def local_sns(folder: Path) -> Iterator[SnsSigner]:
    """A CA, an HTTPS server (certificate for 127.0.0.1) serving an SNS signing certificate."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate("revops test CA", ca_key, "revops test CA", ca_key, ca=True)
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server_cert = _certificate("127.0.0.1", server_key, "revops test CA", ca_key, ca=False)
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing = _certificate("sns.amazonaws.com", signing_key, "revops test CA", ca_key, ca=False)
    (folder / "ca.pem").write_bytes(_pem(ca))
    (folder / "server.pem").write_bytes(
        _pem(server_cert)
        + server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    served = {"/SimpleNotificationService-test.pem": _pem(signing)}
    port = free_port()
    signer = SnsSigner(f"https://127.0.0.1:{port}", folder / "ca.pem", signing_key)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            signer.requested.append(self.path)
            body = served.get(self.path.split("?")[0], b"<ConfirmSubscriptionResponse/>")
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "server.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield signer
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class SignedRequest:
    """A provider's POST: its body and headers."""

    body: bytes
    headers: dict[str, str]


class Keys:
    """Test keys of the four providers and the settings that trust them."""

    def __init__(self) -> None:
        self.sendgrid = ec.generate_private_key(ec.SECP256R1())
        self.mailgun = secrets.token_hex(16)
        self.postmark_user, self.postmark_password = "postmark", secrets.token_hex(8)
        self.postmark_token = secrets.token_hex(8)

    def settings(self, settings: Settings) -> Settings:
        """``settings`` configured for these keys."""
        public = self.sendgrid.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return settings.model_copy(
            update={
                "sendgrid_webhook_public_key": base64.b64encode(public).decode(),
                "mailgun_webhook_signing_key": SecretStr(self.mailgun),
                "postmark_webhook_username": self.postmark_user,
                "postmark_webhook_password": SecretStr(self.postmark_password),
                "postmark_webhook_token": SecretStr(self.postmark_token),
            }
        )


def sendgrid_bounce(keys: Keys, message_id: str, *, forged: bool = False) -> SignedRequest:
    """SendGrid's sample batch naming our Message-ID, signed (or signed with another key)."""
    events = fixture("sendgrid_bounce.json")
    for event in events:
        event["smtp-id"] = message_id
        event["timestamp"] = int(time.time())
        event["sg_event_id"] = f"{event['sg_event_id']}-{uuid.uuid4().hex[:8]}"  # one per event
    body = json.dumps(events).encode()
    stamp = str(int(time.time()))
    key = ec.generate_private_key(ec.SECP256R1()) if forged else keys.sendgrid
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return SignedRequest(
        body,
        {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        },
    )


def mailgun_bounce(
    keys: Keys, message_id: str, *, forged: bool = False, age: float = 0.0
) -> SignedRequest:
    """Mailgun's sample permanent failure naming our Message-ID, signed."""
    payload = fixture("mailgun_failed.json")
    data = payload["event-data"]
    data["message"]["headers"]["message-id"] = message_id.strip("<>")
    data["timestamp"] = time.time()
    stamp, token = str(int(time.time() - age)), secrets.token_hex(25)
    key = secrets.token_hex(16) if forged else keys.mailgun
    mac = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    payload["signature"] = {"timestamp": stamp, "token": token, "signature": mac}
    return SignedRequest(json.dumps(payload).encode(), {"Content-Type": "application/json"})


def postmark_bounce(keys: Keys, message_id: str, *, forged: bool = False) -> SignedRequest:
    """Postmark's sample hard bounce, with the Message-ID in its metadata, authenticated."""
    record = fixture("postmark_bounce.json")
    record["Metadata"]["revops_message_id"] = message_id.strip("<>")
    record["BouncedAt"] = datetime.now(UTC).isoformat()
    password = "wrong" if forged else keys.postmark_password
    credentials = base64.b64encode(f"{keys.postmark_user}:{password}".encode()).decode()
    return SignedRequest(
        json.dumps(record).encode(),
        {
            "Content-Type": "application/json",
            "Authorization": f"Basic {credentials}",
            "X-Webhook-Token": keys.postmark_token,
        },
    )


def ses_bounce(
    sns: SnsSigner, message_id: str, *, forged: bool = False, version: str = "2"
) -> SignedRequest:
    """SES's sample bounce through SNS, naming our Message-ID, signed by the local SNS."""
    payload = fixture("ses_bounce.json")
    payload["mail"]["commonHeaders"]["messageId"] = message_id
    payload["bounce"]["timestamp"] = datetime.now(UTC).isoformat()
    envelope = sns.notification(payload, version)
    if forged:
        envelope["Message"] = envelope["Message"].replace("Permanent", "Transient")
    return SignedRequest(json.dumps(envelope).encode(), {"Content-Type": "application/json"})
