"""State survives a dev-server restart: a contact waiting on a durable timer carries on."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import yaml
from temporalio.client import Client

from revops.settings import Settings
from revops.temporal import DATA_CONVERTER
from starter.devserver import DevServer
from store.repo import Store
from tests.conftest import REPO
from tests.support import eventually, handle_for, running_worker, send, state_of, track


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config_with_short_recycle(tmp_path: Path) -> Path:
    config_dir = tmp_path / "config"
    shutil.copytree(REPO / "config", config_dir)
    recycle = yaml.safe_load((config_dir / "recycle.yaml").read_text())
    recycle["causes"]["closed_lost"]["reasons"]["Timing"]["delay"] = 6  # seconds
    (config_dir / "recycle.yaml").write_text(yaml.safe_dump(recycle))
    return config_dir


async def test_contact_timer_fires_after_the_server_was_stopped_and_started(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    settings = settings.model_copy(update={"config_dir": _config_with_short_recycle(tmp_path)})
    server = DevServer(tmp_path / "temporal.db", port=_free_port(), ui_port=None)
    await server.astart()
    try:
        client = await Client.connect(server.address, data_converter=DATA_CONVERTER)
        async with running_worker(client, store, settings) as relay:
            lost = track("u-restart", "Closed Lost", type_="sales", properties={"reason": "Timing"})
            await send(store, relay, lost)
            handle = handle_for(client, store, "u-restart")
            await eventually(lambda: state_of(handle), lambda s: bool(s.wakeups))
        await server.astop()

        await server.astart()
        client = await Client.connect(server.address, data_converter=DATA_CONVERTER)
        async with running_worker(client, store, settings):
            handle = handle_for(client, store, "u-restart")
            state = await eventually(
                lambda: state_of(handle), lambda s: s.renurture is not None, within=60
            )
    finally:
        await server.astop()
    assert state.renurture is not None
    assert "Timing" in state.renurture.reason
    assert state.events_applied == 1
