"""A lean pipelined connection to one Redis server, for the function calls of the serving path.

redis-py's asyncio Pipeline checks a connection out of the pool, wraps every write in wait_for (a
task) and every reply in a timeout context, and runs each reply through its callbacks: per call, more
than the charge itself costs in Python (py-spy on a loaded server shows it). Here one
connection carries every batch, back to back: a batch is packed by hiredis and written at once, and
the replies, read by a hiredis Reader in the protocol's data callback, fill the batches in the order
they were sent (Redis answers a connection in order), one future per batch.

Time-outs stay with the caller (store/pipeline.py): it cancels a batch that took too long and then
calls reset(), which closes the connection, so every batch still waiting fails with a
ConnectionError and none can ever be handed a reply meant for another. The next batch connects
again: to the same server, or, for a Sentinel-managed primary, to whichever the sentinels name now.
Error replies become redis-py's exception classes (the same parser), so store/replies.py classifies
them alike; a primary turned replica answers READONLY and the connection is dropped, to ask again.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ReadOnlyError

# Where to connect: ('unix', path) or ('tcp', host, port), asked again before each new connection.
Address = tuple[Any, ...]
AddressSource = Callable[[], Awaitable[Address]]


# hiredis' stub takes a tuple of one word; it takes any number (store/resp.py calls it directly)
pack_tuple = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)


def _packed(commands: Sequence[Sequence[Any]]) -> bytes:
    """The commands in RESP, one write's worth. Most unary pipelines carry one call: it is packed
    alone, without the join; a command already a tuple (hiredis wants one) is not copied."""
    if len(commands) == 1:
        return pack_words(commands[0])
    return b"".join(pack_words(command) for command in commands)


def pack_words(command: Sequence[Any]) -> bytes:
    """One command's words in RESP."""
    return pack_tuple(command if type(command) is tuple else tuple(command))


class Batch:
    """The replies a batch still waits for, gathered into one future; `answered`, if given, is called
    as soon as the future is done (its replies in, or the connection failed), from the protocol's own
    callback: a done-callback of the future would run a turn of the loop later, a scheduled handle
    more on every pipeline."""

    __slots__ = ("answered", "future", "remaining", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], count: int, answered: Callable[[], None] | None) -> None:
        self.future, self.remaining, self.answered = future, count, answered
        self.replies: list[Any] = []


class WireProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader(protocolError=InvalidResponse, replyError=BaseParser.parse_error)
        self._waiting: deque[Batch] = deque()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()  # protocols are made inside the loop
        self.lost: BaseException | None = None
        self.saw_readonly = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        reader, waiting = self._reader, self._waiting
        reader.feed(data)
        try:
            # each reply to the batch at the head, in this loop rather than a call a reply: a
            # sweeper step's reads bring dozens in one read
            while (reply := reader.gets()) is not False:
                assert waiting, "a reply nobody asked for"
                batch = waiting[0]
                if isinstance(reply, ReadOnlyError):
                    self.saw_readonly = True
                batch.replies.append(reply)
                batch.remaining -= 1
                if batch.remaining == 0:
                    waiting.popleft()
                    if not batch.future.done():  # a cancelled batch's replies are read and dropped
                        batch.future.set_result(batch.replies)
                    if batch.answered is not None:
                        batch.answered()
        except InvalidResponse as error:  # not RESP: nothing later on this connection can be trusted
            self.close(RedisConnectionError(f"redis: protocol error: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_waiting(exc or RedisConnectionError("redis closed the connection"))

    def _fail_waiting(self, error: BaseException) -> None:
        if self.lost is None:
            self.lost = error
        while self._waiting:
            batch = self._waiting.popleft()
            if not batch.future.done():
                batch.future.set_exception(self._as_connection_error(error))
            if batch.answered is not None:
                batch.answered()

    @staticmethod
    def _as_connection_error(error: BaseException) -> BaseException:
        if isinstance(error, RedisConnectionError):
            return error
        return RedisConnectionError(f"redis connection lost: {type(error).__name__}: {error}")

    def send(self, packed: bytes, count: int, answered: Callable[[], None] | None = None) -> asyncio.Future[list[Any]]:
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        if self.lost is not None or self._transport is None or self._transport.is_closing():
            future.set_exception(self._as_connection_error(self.lost or RedisConnectionError("not connected")))
            if answered is not None:  # never before send returns: the caller first keeps the future
                self._loop.call_soon(answered)
            return future
        self._waiting.append(Batch(future, count, answered))
        self._transport.write(packed)
        return future

    def close(self, error: BaseException) -> None:
        self._fail_waiting(error)
        if self._transport is not None:
            self._transport.abort()

    @property
    def usable(self) -> bool:
        return self.lost is None and not self.saw_readonly and self._transport is not None


class WireClient:
    """One connection, made on first use and again after any failure; `handshake` is sent first
    (AUTH, SELECT) and must answer OK."""

    def __init__(
        self,
        address: AddressSource,
        handshake: Sequence[Sequence[Any]],
        connect_timeout_s: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._address, self._handshake = address, [tuple(command) for command in handshake]
        self._connect_timeout_s, self._tls = connect_timeout_s, tls
        self._protocol: WireProtocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def execute(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """The replies of the commands, in order; error replies as exception objects. Raises
        redis' ConnectionError when the connection fails before every reply came."""
        return await self.execute_packed(_packed(commands), len(commands))

    async def execute_packed(self, packed: bytes, count: int) -> list[Any]:
        """execute, for `count` commands already packed (store/resp.py)."""
        protocol = await self._connected()
        return await protocol.send(packed, count)

    def send_now(self, commands: Sequence[Sequence[Any]]) -> asyncio.Future[list[Any]] | None:
        """execute's exchange on the connection already open, without a coroutine: the replies'
        future (failed with redis' ConnectionError as execute would raise it), or None when no usable
        connection is open, and the caller takes execute's way, which connects."""
        return self.send_packed_now(_packed(commands), len(commands))

    def send_packed_now(
        self, packed: bytes, count: int, answered: Callable[[], None] | None = None
    ) -> asyncio.Future[list[Any]] | None:
        """send_now, for `count` commands already packed (store/resp.py); `answered` is called once
        the returned future is done (Batch), never before this returns, and not when it returns None."""
        protocol = self._protocol
        if protocol is None or not protocol.usable:
            return None
        return protocol.send(packed, count, answered)

    def reset(self, reason: str = "reset by the caller") -> None:
        """Closes the connection; every batch still waiting on it fails."""
        if self._protocol is not None:
            self._protocol.close(RedisConnectionError(f"redis connection closed: {reason}"))
            self._protocol = None

    async def _connected(self) -> WireProtocol:
        protocol = self._protocol
        if protocol is not None and protocol.usable:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and self._protocol.usable:
                return self._protocol
            self.reset("replaced by a new connection")
            self._protocol = await asyncio.wait_for(self._open(), self._connect_timeout_s)
            return self._protocol

    async def _open(self) -> WireProtocol:
        address = await self._address()
        loop = asyncio.get_running_loop()
        try:
            if address[0] == "unix":
                _, protocol = await loop.create_unix_connection(WireProtocol, address[1])
            else:
                _, protocol = await loop.create_connection(WireProtocol, address[1], address[2], ssl=self._tls)
        except OSError as error:  # refused, unreachable, no socket file: retried like a lost connection
            raise RedisConnectionError(f"redis: cannot connect to {address[1:]}: {error}") from error
        if self._handshake:
            replies = await protocol.send(_packed(self._handshake), len(self._handshake))
            for command, reply in zip(self._handshake, replies, strict=True):
                if isinstance(reply, Exception):  # AUTH refusals parse as AuthenticationError
                    protocol.close(reply)
                    raise RedisConnectionError(f"redis refused {command[0]}: {reply}")
        return protocol

    async def close(self) -> None:
        self.reset("closed")
