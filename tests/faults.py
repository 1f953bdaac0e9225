"""Fault injection on real connections: a TCP proxy that can cut a service off and bring it back.

Tests point a client at the proxy instead of the service (here: the real PostgreSQL). ``down``
closes the listening socket and resets every open connection, as a database failover or a
network partition does; ``up`` listens on the same port again. It runs on its own thread and
event loop, so synchronous drivers in worker threads see it like any remote server.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

__all__ = ["TcpProxy", "tcp_proxy"]


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``target_host``:``target_port`` while up."""

    def __init__(self, port: int, target_host: str, target_port: int) -> None:
        self.port = port
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        """Start the proxy's thread and listen."""
        self._thread.start()
        self.up()

    def stop(self) -> None:
        """Cut everything, finish the forwarding tasks and end the thread."""
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def up(self) -> None:
        """Accept and forward connections again."""
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=5)

    def down(self) -> None:
        """Refuse new connections and reset the open ones."""
        asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(timeout=5)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._forward, "127.0.0.1", self.port, reuse_address=True
            )

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _shutdown(self) -> None:
        await self._cut()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            _pump(reader, upstream_writer),
            _pump(upstream_reader, writer),
            return_exceptions=True,
        )
        for w in (writer, upstream_writer):
            self._writers.discard(w)
            w.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


@contextlib.contextmanager
def tcp_proxy(port: int, target_host: str, target_port: int) -> Iterator[TcpProxy]:
    """A started proxy, stopped at the end of the block."""
    proxy = TcpProxy(port, target_host, target_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
