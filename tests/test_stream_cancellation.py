"""A stream ends on the server when its client cancels it, also when the cancellation lands while
the stream is in the middle of a Redis command. Python 3.11's asyncio.wait_for returns its result
when its task is cancelled in the turn that result arrives (CPython gh-86296, fixed in 3.12), and
redis-py awaits its commands through it: the cancellation is dropped, and a stream whose gateway had
gone went on polling Redis, holding its calls-in-flight and watcher slots, until the server stopped.

- clock.raise_if_cancelled and wait_or_stop raise in a task whose cancellation an await dropped
  (a task that catches CancelledError and goes on, as wait_for does), and not in one never
  cancelled or whose asyncio.timeout expired (timeout() takes its own cancellation back);
- followers of a real event feed polling a real Redis, cancelled at moments spread over their
  Redis commands, all end (without the checks, one of them ran on within a few rounds);
- through a real server allowing two calls at once, two WatchNotifications streams cancelled by
  their client leave room for a GetAccount again within seconds, round after round."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable

import grpc
import msgspec
import pytest

from creditd.clock import raise_if_cancelled, wait_or_stop
from creditd.config.settings import Settings
from creditd.core.feed import EventFeed
from creditd.store.connection import connect
from creditd.v1 import creditd_pb2 as pb
from tests.harness import refused_while_full, started_server

pytestmark = pytest.mark.asyncio
ROUNDS = 60
FOLLOWERS = 4
END_WITHIN_S = 5.0
SERVER_ROUNDS = 15
ACCOUNT = "66800000407"


async def dropping_a_cancellation(after_drop: Callable[[], Awaitable[None]]) -> None:
    """Cancelled while asleep, carries on as wait_for does when its result arrived, then runs
    `after_drop` (a coroutine function)."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(10)
    await after_drop()


async def test_a_dropped_cancellation_is_raised_again() -> None:
    stopping = asyncio.Event()

    async def check() -> None:
        raise_if_cancelled()

    async def idle() -> None:
        await wait_or_stop(stopping, 10)

    for after_drop in (check, idle):
        task = asyncio.create_task(dropping_a_cancellation(after_drop))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, END_WITHIN_S)
        assert task.cancelled(), after_drop.__name__


async def test_no_cancellation_asked_none_raised() -> None:
    raise_if_cancelled()
    await wait_or_stop(asyncio.Event(), 0.001)  # its own timeout expired, and taken back
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.001):
            await asyncio.sleep(1)
    raise_if_cancelled()
    stopping = asyncio.Event()
    stopping.set()
    await wait_or_stop(stopping, 10)


async def test_feed_followers_cancelled_mid_command_all_end(redis_server, settings: Settings) -> None:
    busy = msgspec.structs.replace(settings.events, poll_interval_s=0.001)  # most of the time in Redis
    client = connect(redis_server.url, settings.redis)
    feed = EventFeed(client, settings.redis.partitions, busy, settings.redis.call_timeout_s)
    stopping = asyncio.Event()  # set only to end followers that failed the test
    moments = random.Random(36)
    followers: list[asyncio.Task[None]] = []

    async def follow() -> None:
        async for _ in feed.follow(None, stopping):
            pass

    try:
        for round_number in range(ROUNDS):
            followers = [asyncio.create_task(follow()) for _ in range(FOLLOWERS)]
            await asyncio.sleep(moments.uniform(0.001, 0.03))
            for follower in followers:
                follower.cancel()
            _, running = await asyncio.wait(followers, timeout=END_WITHIN_S)
            assert not running, f"round {round_number}: {len(running)} followers still running after cancel"
    finally:
        stopping.set()
        await asyncio.wait(followers, timeout=END_WITHIN_S)
        await client.aclose()


async def served_again(creditd, timeout_s: float) -> float:
    """Seconds until a GetAccount is served, or AssertionError after timeout_s."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            await creditd.get(ACCOUNT)
            return time.monotonic() - started
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        await asyncio.sleep(0.02)
    raise AssertionError(f"GetAccount still refused {timeout_s:g} s after both streams were cancelled")


async def test_streams_cancelled_by_their_client_end_on_the_server(
    redis_server, redis_client, settings: Settings
) -> None:
    two = msgspec.structs.replace(settings, limits=msgspec.structs.replace(settings.limits, max_concurrent_rpcs=2))
    async with started_server(two, redis_server.url, redis_client) as creditd:
        await creditd.create_account(ACCOUNT, balance=10)
        for round_number in range(SERVER_ROUNDS):
            streams = [
                creditd.credit_control.WatchNotifications(pb.WatchNotificationsRequest(gateway_id=gateway))
                for gateway in ("pgw1", "pgw2")
            ]
            await refused_while_full(creditd, ACCOUNT)  # both started: cancelled in their first commands
            for stream in streams:
                stream.cancel()
            took_s = await served_again(creditd, END_WITHIN_S)
            print(f"round {round_number}: served again after {took_s:.3f} s")
