"""Settings read from ``REVOPS_*`` environment variables (and an optional ``.env`` file).

One object, built once at start-up and passed to what needs it, so tests can build their own.
Every default is the embedded laptop setup: a dev server and a SQLite store under ``.revops/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Runtime configuration; each field maps to ``REVOPS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="REVOPS_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".revops")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is a SQLite file in data_dir"
    )
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233
    task_queue: str = "revops"
    priority_task_queue: str = "revops-priority"
    workflow_task_slots: int = Field(
        default=8,
        ge=1,
        description="workflow tasks one worker runs at once (each holds its slot while its "
        "local activities run; fewer slots keep task priorities meaningful under load)",
    )
    serve_priority_queue: bool = Field(
        default=True,
        description="also poll the priority queue; false on busy workers when dedicated "
        "handoff workers serve it",
    )
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    write_keys: list[str] = Field(default_factory=lambda: ["dev-write-key"])
    webhook_secrets: list[SecretStr] = Field(default_factory=lambda: [SecretStr("dev-webhook")])
    id_secret: SecretStr = SecretStr("revops-dev-id-secret")
    config_dir: Path = Path("config")
    journeys_dir: Path = Path("journeys")
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: bool = False
    mail_from: str = "marketing@example.com"
    public_url: str = "http://127.0.0.1:8000"
    slack_webhook_url: str | None = None
    sms_provider: Literal["log", "webhook"] = "log"
    sms_webhook_url: str | None = None
    crm_webhook_url: str | None = None
    outbound_webhook_secret: SecretStr | None = None
    http_timeout_seconds: float = 10.0

    @property
    def sqlalchemy_url(self) -> str:
        """The store's URL: ``database_url`` or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'revops.db').resolve()}"

    @property
    def temporal_db_file(self) -> Path:
        """Where the embedded dev server persists its state."""
        return self.data_dir / "temporal.db"


def get_settings() -> Settings:
    """Settings from the environment (a fresh object each call, cheap)."""
    return Settings()
