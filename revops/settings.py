"""Settings read from ``REVOPS_*`` environment variables (and an optional ``.env`` file).

One object, built once at start-up and passed to what needs it, so tests can build their own.
Every default is the embedded laptop setup: a dev server and a SQLite store under ``.revops/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["OPTIONAL_INTEGRATIONS", "Settings", "get_settings", "redact_path", "redact_url"]


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for logs and printed settings)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


OPTIONAL_INTEGRATIONS = (
    "slack_webhook_url",
    "slack_signing_secret",
    "hubspot_access_token",
    "hubspot_client_secret",
    "hubspot_api_url",
    "salesforce_instance_url",
    "salesforce_access_token",
    "salesforce_username",
    "salesforce_password",
    "salesforce_security_token",
    "salesforce_ca_file",
    "crm_webhook_url",
)
"""Optional Slack and CRM settings that are off while unset or empty (docs/deploy.md)."""


def redact_path(url: str) -> str:
    """``url`` reduced to its scheme and host (webhook URLs carry their secret in the path)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}/***" if parts.scheme else "***"


_SECRET_URLS = frozenset(
    {"slack_webhook_url", "sms_webhook_url", "crm_webhook_url", "alert_webhook_url"}
)


class Settings(BaseSettings):
    """Runtime configuration; each field maps to ``REVOPS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="REVOPS_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".revops")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is a SQLite file in data_dir"
    )
    schema_wait_seconds: float = Field(
        default=120.0,
        ge=0,
        description="how long a worker or the gateway waits at start for `revops migrate` to "
        "bring the store's schema to this release's revision before exiting with code 3",
    )
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_api_key: SecretStr | None = Field(
        default=None, description="API key (Temporal Cloud); turns TLS on"
    )
    temporal_tls: bool | None = Field(
        default=None,
        description="TLS to the frontend; unset means on when an API key or a certificate is set",
    )
    temporal_tls_cert: Path | None = Field(default=None, description="mTLS client certificate")
    temporal_tls_key: Path | None = Field(default=None, description="mTLS client private key")
    temporal_tls_ca: Path | None = Field(
        default=None, description="CA that signed the server's certificate (default: system CAs)"
    )
    temporal_tls_server_name: str | None = Field(
        default=None, description="server name to verify (SNI) when it differs from the address"
    )
    temporal_profile: str | None = Field(
        default=None,
        description="a profile of the Temporal client config file (TOML, as the temporal CLI "
        "writes it) to start from; REVOPS_TEMPORAL_* settings that are set override it",
    )
    temporal_config_file: Path | None = Field(
        default=None,
        description="that TOML file (default: TEMPORAL_CONFIG_FILE or the CLI's default path)",
    )
    temporal_ui_port: int = 8233
    temporal_ui_url: str | None = Field(
        default=None,
        description="the Temporal web UI the dashboard links contacts to "
        "(default: http://127.0.0.1:<temporal_ui_port>)",
    )
    task_queue: str = "revops"
    priority_task_queue: str = "revops-priority"
    workflow_task_slots: int = Field(
        default=8,
        ge=1,
        description="workflow tasks one worker runs at once (each holds its slot while its "
        "local activities run; fewer slots keep task priorities meaningful under load)",
    )
    workflow_sandbox: bool = Field(
        default=True,
        description="run workflows in the SDK's sandbox (restricted imports and calls checked "
        "at run time); false runs them unsandboxed, less CPU per workflow task, with the "
        "replay of every committed history (sandboxed) as the determinism guard",
    )
    relay_shards: int = Field(
        default=4,
        ge=1,
        le=256,
        description="shards of the outbox relay (by contact hash, one lease each): gateway "
        "processes split them, so up to this many deliver in parallel; every gateway of a "
        "store must use the same value",
    )
    serve_priority_queue: bool = Field(
        default=True,
        description="also poll the priority queue; false on busy workers when dedicated "
        "handoff workers serve it",
    )
    worker_metrics_port: int | None = Field(
        default=None,
        description="`revops worker` exports the Temporal SDK's metrics (task slots, "
        "schedule-to-start latency, sticky cache) for Prometheus on this port (all interfaces)",
    )
    journey_error_rate_threshold: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="a journey whose failed send steps over all its send steps in the window "
        "exceed this raises an alert (Slack and/or REVOPS_ALERT_WEBHOOK_URL)",
    )
    journey_error_rate_window_minutes: float = Field(
        default=60.0, gt=0, description="the window the journey error rate is computed over"
    )
    journey_error_rate_min_steps: int = Field(
        default=20, ge=1, description="no alert for a journey with fewer send steps in the window"
    )
    alert_webhook_url: str | None = Field(
        default=None, description="operational alerts are POSTed here as JSON (and to Slack)"
    )
    otel_tracing: bool = Field(
        default=False,
        description="OpenTelemetry spans for Temporal calls, workflows and activities "
        "(Temporal's TracingInterceptor) on the process's tracer provider; needs the "
        "`tracing` extra and an exporter configured the OpenTelemetry way (OTEL_* variables)",
    )
    worker_health_port: int | None = Field(
        default=None,
        description="`revops worker` serves /healthz and /readyz on this port (all interfaces)",
    )
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    write_keys: list[str] = Field(default_factory=lambda: ["dev-write-key"])
    future_timestamp_margin_seconds: float = Field(
        default=600.0,
        ge=0,
        description="an event timed (after clock-skew correction) more than this past its "
        "arrival is clamped to its arrival and flagged (context.revops.clamped_timestamp)",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="web origins whose pages may post to the tracking API (the browser "
        'library), e.g. ["https://www.example.com"]; "*" allows any; empty: none',
    )
    webhook_secrets: list[SecretStr] = Field(default_factory=lambda: [SecretStr("dev-webhook")])
    id_secret: SecretStr = SecretStr("revops-dev-id-secret")
    config_dir: Path = Path("config")
    journeys_dir: Path = Path("config/journeys")
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: bool = False
    smtp_connections: int = Field(
        default=2,
        ge=1,
        description="SMTP connections each worker keeps open and reuses (reconnected on failure)",
    )
    smtp_messages_per_connection: int = Field(
        default=100,
        ge=1,
        description="messages sent over one SMTP connection before it is replaced",
    )
    mail_from: str = Field(
        default="marketing@example.com",
        description="From address of outgoing email; its domain names the Message-IDs",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="the gateway as recipients reach it: unsubscribe, click and open links",
    )
    links_url: str | None = Field(
        default=None,
        description="where recipients' links point (click, open, unsubscribe) when a separate "
        "`revops gateway --role links` process serves them; default: public_url",
    )
    mail_provider: Literal["smtp", "ses", "sendgrid", "postmark", "mailgun"] = Field(
        default="smtp",
        description="the ESP behind the SMTP relay: adds its metadata header so its event "
        "webhooks name our Message-ID (docs/email.md)",
    )
    track_opens: bool = Field(default=True, description="open pixel in marketing email")
    track_clicks: bool = Field(default=True, description="tracked links in marketing email")
    tracking_scanner_seconds: float = Field(
        default=5.0,
        ge=0,
        description="a click this soon after the send is a link scanner's, not a person's",
    )
    soft_bounce_limit: int = Field(
        default=3,
        ge=1,
        description="soft bounces in a row (no delivery between) that suppress an address",
    )
    send_rates: dict[str, float] = Field(
        default_factory=dict,
        description='sends per second per channel, across all workers, e.g. {"email": 14}',
    )
    email_webhook_tolerance_seconds: int = Field(
        default=300, ge=1, description="oldest signed timestamp accepted (SendGrid, Mailgun)"
    )
    sns_max_age_seconds: int = Field(
        default=3600, ge=1, description="oldest SNS message accepted (its Timestamp)"
    )
    sns_cert_host_pattern: str = Field(
        default=r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$",
        description="hosts an SNS SigningCertURL may name (https only)",
    )
    sns_ca_file: Path | None = Field(
        default=None, description="CA bundle to trust when fetching SNS certificates"
    )
    sns_topic_arns: list[str] = Field(
        default_factory=list, description="SNS topics accepted (empty: any topic)"
    )
    sendgrid_webhook_public_key: str | None = Field(
        default=None, description="SendGrid Signed Event Webhook verification key (base64)"
    )
    postmark_webhook_username: str | None = None
    postmark_webhook_password: SecretStr | None = None
    postmark_webhook_token: SecretStr | None = Field(
        default=None, description="value of the X-Webhook-Token header set on Postmark's webhook"
    )
    mailgun_webhook_signing_key: SecretStr | None = None
    slack_webhook_url: str | None = None
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        description="the Slack app's signing secret: verifies Accept / Reject clicks "
        "(POST /v1/slack/interactions)",
    )
    hubspot_access_token: SecretStr | None = Field(
        default=None, description="HubSpot private app access token (docs/crm.md)"
    )
    hubspot_client_secret: SecretStr | None = Field(
        default=None, description="the HubSpot app's client secret: verifies its webhooks (v3)"
    )
    hubspot_api_url: str | None = Field(
        default=None, description="HubSpot API base URL (default https://api.hubapi.com)"
    )
    salesforce_instance_url: str | None = Field(
        default=None, description="the org's instance, e.g. https://acme.my.salesforce.com"
    )
    salesforce_access_token: SecretStr | None = Field(
        default=None, description="a connected app's OAuth access token (session id)"
    )
    salesforce_username: str | None = None
    salesforce_password: SecretStr | None = None
    salesforce_security_token: SecretStr | None = None
    salesforce_ca_file: Path | None = Field(
        default=None, description="CA bundle to trust for the instance (default: system CAs)"
    )
    salesforce_poll_seconds: float = Field(
        default=60.0, gt=0, description="how often Opportunity changes are read (SOQL)"
    )
    crm_rate_limit: int = Field(default=100, ge=1, description="CRM calls per window")
    crm_rate_window_seconds: float = Field(
        default=10.0, gt=0, description="the CRM's rate window (HubSpot: 100 per 10 s)"
    )
    crm_poll_seconds: float = Field(
        default=1.0, gt=0, description="how often the pusher looks for queued CRM pushes"
    )
    sms_provider: Literal["log", "webhook"] = "log"
    sms_webhook_url: str | None = None
    crm_webhook_url: str | None = None
    in_app_url: str | None = Field(
        default=None,
        description="the product's endpoint for in-app messages (journeys' in_app channel)",
    )
    outbound_webhook_secret: SecretStr | None = None
    http_timeout_seconds: float = 10.0
    dashboard_users: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="who may sign in to /dashboard: user name -> password hash "
        "(`revops dashboard hash-password`); none configured: nobody can sign in",
    )
    dashboard_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    operators: dict[str, list[str]] = Field(
        default_factory=dict,
        description="operator (OS user) -> role names; none: definitions are not guarded",
    )
    roles: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict,
        description='role -> action (validate, deploy, rollback) -> kinds ("*": all); '
        "the role admin may do everything",
    )
    event_retention_days: int | None = Field(
        default=None,
        ge=1,
        description="events older than this become daily counts and are deleted by the "
        "retention schedule (`revops retention schedule`); unset keeps them",
    )
    payload_encryption: bool = Field(
        default=False,
        description="encrypt every Temporal payload (AES-GCM, docs/privacy.md); off in the "
        "embedded dev setup, on in docker-compose.yml and deploy/k8s",
    )
    payload_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="JSON object: key id -> base64 AES key; the first encrypts, all decrypt",
    )
    codec_tokens: list[SecretStr] = Field(
        default_factory=list,
        description="bearer tokens that may use the codec endpoint /v1/codec (support staff; "
        "a dashboard sign-in works too)",
    )
    codec_cors_origins: list[str] = Field(
        default_factory=list,
        description="browser origins allowed to call /v1/codec besides the Temporal UI's",
    )

    @field_validator(*OPTIONAL_INTEGRATIONS, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """An empty value is no value: docker-compose.yml passes these through as
        ``${NAME:-}``, and an empty token must leave the integration off, not try it."""
        return None if isinstance(value, str) and not value.strip() else value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """Printed settings show no secret: SecretStr fields hide theirs, the database URL its
        password, webhook URLs (whose path is the credential, as Slack's is) their path, and
        write keys all but their first characters."""
        for name, value in super().__repr_args__():
            if name == "database_url" and isinstance(value, str):
                yield name, redact_url(value)
            elif name in _SECRET_URLS and isinstance(value, str):
                yield name, redact_path(value)
            elif name == "write_keys" and isinstance(value, list):
                yield name, [f"{key[:3]}***" for key in value]
            else:
                yield name, value

    @property
    def recipient_url(self) -> str:
        """The base of every link a recipient follows (the links process, else the gateway)."""
        return (self.links_url or self.public_url).rstrip("/")

    @property
    def sqlalchemy_url(self) -> str:
        """The store's URL: ``database_url`` or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'revops.db').resolve()}"

    @property
    def temporal_ui(self) -> str:
        """The Temporal web UI's base URL."""
        return (self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}").rstrip("/")

    @property
    def temporal_db_file(self) -> Path:
        """Where the embedded dev server persists its state."""
        return self.data_dir / "temporal.db"


def get_settings() -> Settings:
    """Settings from the environment (a fresh object each call, cheap)."""
    return Settings()
