"""The lean pipelined connection (store/wire.py) against a real embedded server: replies reach the
batch that asked, in order, across hundreds of batches in flight at once and with error replies in
the middle; a connection the server kills, or that the caller resets while a batch waits, fails what
was waiting and the next batch connects again and gets its own replies; a wrong password is refused
by name; error replies keep redis-py's classes, so a READONLY reply is classified as transient."""

from __future__ import annotations

import asyncio
import random
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError

from creditd.config.settings import RedisSettings
from creditd.errors import Unavailable
from creditd.store.connection import connect, wire_client
from creditd.store.embedded import EmbeddedRedis
from creditd.store.replies import classify_reply_error
from creditd.store.wire import WireClient

BATCHES = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(Path(tmp_path_factory.mktemp("wire"))) as embedded:
        yield embedded


def wire_of(url: str) -> WireClient:
    wire = wire_client(connect(url, RedisSettings()), url, RedisSettings())
    assert wire is not None
    return wire


@pytest.mark.asyncio
async def test_every_batch_gets_its_own_replies_in_order(server: EmbeddedRedis) -> None:
    wire, rng = wire_of(server.url), random.Random(5)

    async def one(batch: int) -> None:
        size = rng.randint(1, 12)
        failing = rng.randrange(size)
        commands = [("ECHO", f"{batch}/{n}") if n != failing else ("NO_SUCH_COMMAND", batch) for n in range(size)]
        replies = await wire.execute(commands)
        assert len(replies) == size
        for n, reply in enumerate(replies):
            if n == failing:
                assert isinstance(reply, ResponseError) and "unknown command" in str(reply)
            else:
                assert reply == f"{batch}/{n}".encode()

    await asyncio.gather(*(one(batch) for batch in range(BATCHES)))
    await wire.close()


@pytest.mark.asyncio
async def test_a_killed_connection_fails_then_the_next_batch_reconnects(server: EmbeddedRedis) -> None:
    wire = wire_of(server.url)
    name = "wire-test-killed"
    assert await wire.execute([("CLIENT", "SETNAME", name), ("PING",)]) == [b"OK", b"PONG"]
    admin = redis.Redis.from_url(server.url)
    try:
        assert admin.execute_command("CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal") >= 1
    finally:
        admin.close()
    with pytest.raises(RedisConnectionError):
        for _ in range(100):  # the close reaches the protocol a loop turn or two later
            await wire.execute([("PING",)])
            await asyncio.sleep(0.01)
    assert await wire.execute([("ECHO", "again")]) == [b"again"]
    await wire.close()


@pytest.mark.asyncio
async def test_a_reset_fails_the_waiting_batch_and_later_replies_stay_aligned(server: EmbeddedRedis) -> None:
    wire = wire_of(server.url)
    waiting = asyncio.ensure_future(wire.execute([("BLPOP", "wire-test-never", 5)]))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    wire.reset("the caller's deadline passed")
    with pytest.raises(RedisConnectionError, match="deadline passed"):
        await waiting
    assert await wire.execute([("ECHO", "after"), ("ECHO", "reset")]) == [b"after", b"reset"]
    await wire.close()


@pytest.mark.asyncio
async def test_a_wrong_password_is_refused_by_name(server: EmbeddedRedis) -> None:
    parts = urllib.parse.urlsplit(server.url)
    wrong = urllib.parse.urlunsplit(parts._replace(netloc=":not-the-password@"))
    with pytest.raises(RedisConnectionError, match="refused AUTH"):
        await wire_of(wrong).execute([("PING",)])


def test_a_cluster_keeps_the_redis_py_pipelines(server: EmbeddedRedis) -> None:
    cluster_url = "redis+cluster://127.0.0.1:1"
    assert wire_client(connect(cluster_url, RedisSettings()), cluster_url, RedisSettings()) is None


def test_readonly_replies_are_transient() -> None:
    parsed = ReadOnlyError("You can't write against a read only replica.", status_code="READONLY")
    assert isinstance(classify_reply_error(parsed), Unavailable)
