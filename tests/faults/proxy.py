"""A TCP proxy between creditd and Redis, started by the fault tests on loopback, that can misbehave
on demand the ways a network does:

- `delay_s`: every chunk from Redis to the client waits this long (a slow path);
- `blackhole`: new and existing connections are accepted but nothing is forwarded any more (a path
  that drops packets without a reset);
- `cut_replies()`: every open connection is closed in the middle of the next reply from Redis
  (half of a chunk is delivered, then the socket closes).

It runs on its own event loop in a thread, so a test's loop stalling does not stall the proxy, and
it stops every connection it holds when stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from creditd.devtools.ports import HOST, free_port

CHUNK_BYTES = 65_536
STOP_TIMEOUT_S = 5.0


class FaultyProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.delay_s = 0.0
        self.blackhole = False
        self._clients: set[asyncio.StreamWriter] = set()
        self._to_cut: set[asyncio.StreamWriter] = set()
        # Connections closed half-way through a reply so far.
        self.cuts = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faulty-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(STOP_TIMEOUT_S)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(STOP_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT_S)

    def cut_replies(self) -> None:
        """On each connection open now, the next chunk from Redis is delivered half, then the
        connection closes; later connections are not affected."""
        self._loop.call_soon_threadsafe(self._mark_cut)

    def _mark_cut(self) -> None:
        self._to_cut = set(self._clients)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._writers.add(client_writer)
        self._clients.add(client_writer)
        try:
            redis_reader, redis_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self._writers.add(redis_writer)
        upstream = asyncio.create_task(self._pump(client_reader, redis_writer, from_redis=False))
        downstream = asyncio.create_task(self._pump(redis_reader, client_writer, from_redis=True))
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        for task in (upstream, downstream):
            task.cancel()
        for writer in (client_writer, redis_writer):
            writer.close()
            self._writers.discard(writer)
        self._clients.discard(client_writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, from_redis: bool) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while chunk := await reader.read(CHUNK_BYTES):
                while self.blackhole:
                    await asyncio.sleep(0.05)  # hold everything, answer nothing, close nothing
                if from_redis and self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if from_redis and writer in self._to_cut:
                    self._to_cut.discard(writer)
                    self.cuts += 1
                    writer.write(chunk[: max(1, len(chunk) // 2)])
                    await writer.drain()
                    return
                writer.write(chunk)
                await writer.drain()


@contextlib.contextmanager
def faulty_proxy(target_host: str, target_port: int) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(target_host, target_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
