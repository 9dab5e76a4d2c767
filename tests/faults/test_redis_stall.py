"""Redis stops answering in the middle of a money load, and creditd still answers every request within
redis.call_timeout_s + 0.5 s: UNAVAILABLE naming Redis, which the clients retry with the same ids.
Health goes NOT_SERVING within health_check_interval_s + call_timeout_s of the fault and SERVING
within 2 s of Redis answering again. Each fault ends with the books of tests/money_load.py: exact
balances against what was acknowledged, every acknowledged request replaying its first answer, no
top-up answer carrying another account's card (a late reply read on a reused connection would), and
a clean audit (nothing reserved, no session left past its deadline).

The faults, each against its own Redis on a loopback TCP port (devtools LocalServer):
- Redis frozen with SIGSTOP, then SIGCONT: 1 and 5 s here, and 15 s as well in the long run
  (CREDITD_FAULTS=long python -m pytest tests/faults);
- a TCP proxy between creditd and Redis (tests/faults/proxy.py) that delays every reply past the
  time-out, holds everything without forwarding or closing (a path that drops packets), or cuts
  every open connection in the middle of a reply.

Every loop is bounded (tests/money_load.py: a request budget, a settle budget); every server and the
proxy are stopped by the test that started them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import msgspec
import pytest
from grpc_health.v1 import health_pb2

from creditd import metrics
from creditd.config.settings import Settings
from creditd.devtools.local_topology import LocalServer
from creditd.v1 import creditd_pb2 as pb
from tests.faults.proxy import FaultyProxy, faulty_proxy
from tests.harness import Harness, library_client, started_server, watch_health
from tests.money_load import MoneyLoad

pytestmark = pytest.mark.asyncio
CALL_TIMEOUT_S = 1.0
HEALTH_INTERVAL_S = 0.25
# What the issue allows beyond the time-out for an answer, and for health to follow Redis.
ANSWER_SLACK_S = 0.5
SERVING_AGAIN_WITHIN_S = 2.0
# The health watcher polls every 50 ms; its own lateness is not creditd's.
WATCH_SLACK_S = 0.5
ACCOUNTS = [f"66855{n:06d}" for n in range(12)]
START_BALANCE = 10_000_000  # no account runs out of money during a run
WORKERS = 8
MAX_REQUESTS = 20_000
LOAD_BEFORE_S = 1.0
LOAD_AFTER_S = 2.0
LONG_RUN = os.environ.get("CREDITD_FAULTS") == "long"
FREEZE_SECONDS = [1.0, 5.0, 15.0] if LONG_RUN else [1.0, 5.0]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _tuned(settings: Settings) -> Settings:
    redis_settings = msgspec.structs.replace(
        settings.redis, call_timeout_s=CALL_TIMEOUT_S, health_check_interval_s=HEALTH_INTERVAL_S
    )
    return msgspec.structs.replace(settings, redis=redis_settings)


@dataclass
class FaultRun:
    """What one fault did to the service, measured from the clients' side."""

    load: MoneyLoad
    fault_started: float = 0.0
    fault_ended: float = 0.0
    health: list[tuple[float, int]] = field(default_factory=list)

    def first(self, status: int, after: float) -> float | None:
        return next((at for at, seen in self.health if seen == status and at >= after), None)

    def report(self, name: str) -> str:
        not_serving = self.first(NOT_SERVING, self.fault_started)
        serving = self.first(SERVING, self.fault_ended)
        return (
            f"{name}: acknowledged during the run {self.load.acknowledged_during_load}, "
            f"UNAVAILABLE {self.load.errors.get('UNAVAILABLE', 0)}, slowest answer {self.load.slowest_s:.2f} s, "
            f"NOT_SERVING after {_seconds(not_serving, self.fault_started)}, "
            f"SERVING again after {_seconds(serving, self.fault_ended)}"
        )


def _seconds(at: float | None, since: float) -> str:
    return "never" if at is None else f"{at - since:.2f} s"


@dataclass
class Service:
    harness: Harness
    redis: LocalServer
    proxy: FaultyProxy | None


@contextlib.asynccontextmanager
async def _service(directory: Path, settings: Settings, proxied: bool = False) -> AsyncIterator[Service]:
    """A Redis of the test's own and a creditd in front of it, through a proxy when asked."""
    tuned = _tuned(settings)
    with LocalServer(directory) as redis_server, contextlib.ExitStack() as stack:
        client = stack.enter_context(library_client(redis_server.url, tuned))
        proxy = stack.enter_context(faulty_proxy("127.0.0.1", redis_server.server.port)) if proxied else None
        url = redis_server.url if proxy is None else redis_server.url_via(proxy.port)
        async with started_server(tuned, url, client) as harness:
            yield Service(harness, redis_server, proxy)


def _for_a_while(switch: Callable[[bool], None], seconds: float) -> Callable[[FaultRun], Awaitable[None]]:
    """A fault that `switch(True)` starts and `switch(False)` ends, `seconds` apart, timed on the run."""

    async def fault(run: FaultRun) -> None:
        run.fault_started = time.monotonic()
        switch(True)
        try:
            await asyncio.sleep(seconds)
        finally:
            switch(False)
        run.fault_ended = time.monotonic()

    return fault


async def _run_fault(harness: Harness, fault: Callable[[FaultRun], Awaitable[None]]) -> FaultRun:
    for account_id in ACCOUNTS:
        await harness.create_account(account_id, balance=START_BALANCE)
    run = FaultRun(MoneyLoad(harness.channel, ACCOUNTS, START_BALANCE, MAX_REQUESTS))
    stopping, watching = asyncio.Event(), asyncio.Event()
    watcher = asyncio.create_task(watch_health(harness, run.health, watching))
    load = asyncio.create_task(run.load.run(stopping, WORKERS))
    await asyncio.sleep(LOAD_BEFORE_S)
    await fault(run)
    await asyncio.sleep(LOAD_AFTER_S)
    stopping.set()
    await load
    watching.set()
    await watcher
    await run.load.settle()
    return run


def _assert_answered_in_time_and_health_followed(run: FaultRun, name: str) -> None:
    print(run.report(name))
    assert run.load.slowest_s <= CALL_TIMEOUT_S + ANSWER_SLACK_S, run.report(name)
    not_serving = run.first(NOT_SERVING, run.fault_started)
    not_serving_within_s = HEALTH_INTERVAL_S + CALL_TIMEOUT_S + WATCH_SLACK_S
    if run.fault_ended - run.fault_started > not_serving_within_s:  # a shorter fault may pass unseen
        assert not_serving is not None, run.report(name)
        assert not_serving - run.fault_started <= not_serving_within_s, run.report(name)
    serving = run.first(SERVING, run.fault_ended)
    assert serving is not None and serving - run.fault_ended <= SERVING_AGAIN_WITHIN_S, run.report(name)


def _refused_at_once() -> float:
    return metrics.REGISTRY.get_sample_value("creditd_redis_refused_total") or 0.0


@pytest.mark.parametrize("freeze_s", FREEZE_SECONDS)
async def test_redis_frozen(tmp_path: Path, settings: Settings, freeze_s: float) -> None:
    async with _service(tmp_path, settings) as service:

        def frozen(on: bool) -> None:
            (service.redis.server.pause if on else service.redis.server.resume)()

        refused_before = _refused_at_once()
        run = await _run_fault(service.harness, _for_a_while(frozen, freeze_s))
        _assert_answered_in_time_and_health_followed(run, f"frozen {freeze_s:g} s")
        assert run.load.errors["UNAVAILABLE"] > 0
        if freeze_s > CALL_TIMEOUT_S + HEALTH_INTERVAL_S:  # long enough for the circuit to open
            assert _refused_at_once() > refused_before  # failed fast instead of queuing
        await run.load.assert_books_balance(service.harness)


async def test_replies_delayed_past_the_time_out(tmp_path: Path, settings: Settings) -> None:
    """Every reply arrives 1.5 time-outs late for 3 s: time-outs under load, connections abandoned
    in the middle of an exchange; no answer may belong to another request afterwards."""
    async with _service(tmp_path, settings, proxied=True) as service:
        proxy = service.proxy
        assert proxy is not None

        def slow(on: bool) -> None:
            proxy.delay_s = CALL_TIMEOUT_S * 1.5 if on else 0.0

        run = await _run_fault(service.harness, _for_a_while(slow, 3.0))
        _assert_answered_in_time_and_health_followed(run, "replies delayed 1.5 s")
        await _assert_every_card_is_its_own(service.harness)
        await run.load.assert_books_balance(service.harness)


async def test_path_drops_everything_silently(tmp_path: Path, settings: Settings) -> None:
    """The proxy accepts and holds, forwards nothing and closes nothing, for 4 s."""
    async with _service(tmp_path, settings, proxied=True) as service:
        proxy = service.proxy
        assert proxy is not None

        def black_hole(on: bool) -> None:
            proxy.blackhole = on

        run = await _run_fault(service.harness, _for_a_while(black_hole, 4.0))
        _assert_answered_in_time_and_health_followed(run, "path silent 4 s")
        assert run.load.errors["UNAVAILABLE"] > 0
        await run.load.assert_books_balance(service.harness)


async def test_connections_cut_in_the_middle_of_a_reply(tmp_path: Path, settings: Settings) -> None:
    """Every open connection is cut half-way through a reply, five times, 200 ms apart."""
    async with _service(tmp_path, settings, proxied=True) as service:
        proxy = service.proxy
        assert proxy is not None

        async def cuts(run: FaultRun) -> None:
            run.fault_started = time.monotonic()
            for _ in range(5):
                proxy.cut_replies()
                await asyncio.sleep(0.2)
            run.fault_ended = time.monotonic()

        run = await _run_fault(service.harness, cuts)
        print(run.report("connections cut mid-reply"), f"cuts {proxy.cuts}")
        assert proxy.cuts > 0
        assert run.load.slowest_s <= CALL_TIMEOUT_S + ANSWER_SLACK_S, run.report("cuts")
        await run.load.assert_books_balance(service.harness)


async def _assert_every_card_is_its_own(harness: Harness) -> None:
    """Many concurrent reads of different accounts: each card answers the account asked for."""
    for _ in range(5):
        cards = await asyncio.gather(*(harness.get(account_id) for account_id in ACCOUNTS * 20))
        assert [card.account_id for card in cards] == ACCOUNTS * 20


async def test_event_stream_ends_unavailable_and_resumes(tmp_path: Path, settings: Settings) -> None:
    """A WatchEvents stream while Redis is frozen ends with UNAVAILABLE within the time-out (not a hang,
    not UNKNOWN); resumed from the last id it got, it delivers what happened meanwhile, once."""
    async with _service(tmp_path, settings) as service:
        harness = service.harness
        await harness.create_account(ACCOUNTS[0], balance=START_BALANCE)
        await harness.top_up(ACCOUNTS[0], 100, "before")
        stream = harness.accounts.WatchEvents(pb.WatchEventsRequest(from_id="0-0-0"))
        seen = [await stream.read() for _ in range(2)]  # the account created and the first top-up
        assert [event.kind for event in seen] == ["account_created", "topup"]
        service.redis.server.pause()
        frozen_at = time.monotonic()
        try:
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await stream.read()
            ended_after_s = time.monotonic() - frozen_at
        finally:
            service.redis.server.resume()
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE, ended.value
        assert ended_after_s <= CALL_TIMEOUT_S + ANSWER_SLACK_S + settings.events.poll_interval_s
        await harness.top_up(ACCOUNTS[0], 100, "after")
        resumed = harness.accounts.WatchEvents(pb.WatchEventsRequest(from_id=seen[-1].id))
        after = await resumed.read()
        assert (after.kind, after.attributes.get("detail", "")) == ("topup", "100 bank")
        resumed.cancel()
