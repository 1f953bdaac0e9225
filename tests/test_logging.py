"""Logs that help and never leak: tracebacks with frames and no local variables, in both
formats, and settings printed without secrets.

Each format runs in its own process (``configure_logging`` owns the root logger), which
fails inside a function holding a secret in a local variable and logs it twice: through
structlog (``log.exception``) and through the standard library, as uvicorn logs a crashed
request.
"""

from __future__ import annotations

import json
import subprocess
import sys

from pydantic import SecretStr

from revops.settings import Settings
from tests.conftest import REPO

SECRET = "id-secret-4f9c2e"
_SCRIPT = f"""
import logging, sys
from revops.logging import configure_logging, get_logger
configure_logging(sys.argv[1], "INFO")

def verify(token):
    secret = {SECRET!r}
    raise ValueError("token " + token[:3] + " does not verify")

try:
    verify("abcdef")
except ValueError:
    get_logger("revops.test").exception("verify_failed", contact="c123")
try:
    verify("abcdef")
except ValueError:
    logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=True)
"""


def _run(fmt: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, fmt],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_json_logs_carry_structured_tracebacks_without_locals() -> None:
    output = _run("json")
    lines = [json.loads(line) for line in output.splitlines()]
    assert [line["event"] for line in lines] == ["verify_failed", "Exception in ASGI application"]
    for line in lines:
        (raised,) = line["exception"]
        assert raised["exc_type"] == "ValueError" and "does not verify" in raised["exc_value"]
        frames = raised["frames"]
        assert frames[-1]["name"] == "verify" and frames[-1]["lineno"] > 0
        assert all("locals" not in frame for frame in frames)
    assert SECRET not in output and "<traceback object" not in output


def test_console_tracebacks_show_frames_without_locals() -> None:
    output = _run("console")
    assert output.count("ValueError: token abc does not verify") == 2
    assert "verify" in output and "Traceback" in output
    assert SECRET not in output and "locals" not in output.lower()


def test_printed_settings_hide_every_secret() -> None:
    settings = Settings(
        id_secret=SecretStr(SECRET),
        database_url="postgresql://revops:pg-pass-77@db:5432/revops",
        slack_webhook_url="https://hooks.slack.com/services/T000/B000/slack-token-88",
        crm_webhook_url="https://crm.example.com/hooks/crm-token-99",
        write_keys=["wk-live-123456"],
        smtp_password=SecretStr("smtp-pass-55"),
    )
    for printed in (repr(settings), str(settings)):
        for secret in (SECRET, "pg-pass-77", "slack-token-88", "crm-token-99", "wk-live-123456"):
            assert secret not in printed
        assert "smtp-pass-55" not in printed
        assert "https://hooks.slack.com/***" in printed
