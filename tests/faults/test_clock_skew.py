"""Two creditd processes on one Redis whose clocks disagree by 90 s (the clock offset hook: one runs
90 s fast). Time comes from each server's clock (now_ms in every call), bounded against Redis' own
TIME: a server whose clock is off by more than redis.max_clock_skew_ms refuses every call with
UNAVAILABLE naming the clock, and reports NOT_SERVING, until its clock agrees again. So the fast one
cannot pull a session's deadline (the sweeper's orphan release), a ladder step or a bucket's expiry
early: its calls never reach the functions. The one on time serves throughout."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import msgspec
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from creditd.clock import Clock
from creditd.config.settings import Settings
from creditd.devtools.local_topology import LocalServer
from creditd.errors import Unavailable
from tests.harness import DATA, INITIAL, Harness, library_client, started_server

pytestmark = pytest.mark.asyncio
ACCOUNT = "66858000001"
SKEW_S = 90
MAX_SKEW_MS = 2_000
HEALTH_INTERVAL_S = 0.2
NOT_SERVING_WITHIN_S = 5.0
SHORT_VALIDITY_S = 20
SHORT_GRACE_S = 10


def _guarded(settings: Settings) -> Settings:
    """The skew check on, and data grants short enough (20 s, 10 s grace) that a clock 90 s fast
    would see the session as an orphan."""
    redis_settings = msgspec.structs.replace(
        settings.redis, max_clock_skew_ms=MAX_SKEW_MS, health_check_interval_s=HEALTH_INTERVAL_S
    )
    plan = settings.plans["standard"]
    tariffs = [
        msgspec.structs.replace(tariff, validity_time_s=SHORT_VALIDITY_S) if tariff.rating_group == DATA else tariff
        for tariff in plan.tariffs
    ]
    plans = {**settings.plans, "standard": msgspec.structs.replace(plan, tariffs=tariffs)}
    sweeper = msgspec.structs.replace(settings.sweeper, grace_period_s=SHORT_GRACE_S)
    return msgspec.structs.replace(settings, redis=redis_settings, plans=plans, sweeper=sweeper)


async def _health(harness: Harness) -> int:
    stub = health_pb2_grpc.HealthStub(harness.channel)
    return (await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5.0)).status


async def _until_not_serving(harness: Harness) -> float:
    started = time.monotonic()
    while await _health(harness) != health_pb2.HealthCheckResponse.NOT_SERVING:
        assert time.monotonic() - started < NOT_SERVING_WITHIN_S, "the fast server kept serving"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_fast_clock_is_refused_and_pulls_nothing_early(tmp_path: Path, settings: Settings) -> None:
    guarded = _guarded(settings)
    with LocalServer(tmp_path) as redis_server, library_client(redis_server.url, guarded) as client:
        async with started_server(guarded, redis_server.url, client, Clock()) as on_time:
            await on_time.create_account(ACCOUNT, balance=1_000)
            opened = await on_time.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])
            validity_s = opened.grants[0].validity_time_s
            async with started_server(guarded, redis_server.url, client, Clock(SKEW_S * 1000)) as fast:
                took_s = await _until_not_serving(fast)
                print(f"the fast server went NOT_SERVING {took_s:.2f} s after it started")
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await fast.top_up(ACCOUNT, 100, "fast-1")
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "clock" in (refused.value.details() or ""), refused.value.details()
                # Its sweeper, 90 s ahead, sees the session (valid validity_s < 90 s) as overdue:
                assert validity_s + guarded.sweeper.grace_period_s < SKEW_S
                with pytest.raises(Unavailable, match="clock"):
                    await fast.server.sweeper.sweep_once()
                assert await _health(on_time) == health_pb2.HealthCheckResponse.SERVING
                card = await on_time.get(ACCOUNT)
                assert card.open_sessions == 1 and card.reserved > 0  # not released early
                assert (await on_time.top_up(ACCOUNT, 100, "on-time-1")).account.balance == 1_100
            on_time.assert_audit_clean()
