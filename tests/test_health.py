"""Health follows Redis: with Redis stopped, gRPC health reports NOT_SERVING and a Charge fails with a
clear UNAVAILABLE error instead of hanging or killing the server; when Redis is back on the same
data, health reports SERVING again and charging works, with the library loaded again if Redis had lost
it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import msgspec
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from creditd.api.server import CreditdServer
from creditd.config.settings import Settings
from creditd.errors import Unavailable
from creditd.store.embedded import EmbeddedRedis
from creditd.v1 import creditd_pb2 as pb
from tests.harness import DATA, INITIAL, Harness, daytime_clock

pytestmark = pytest.mark.asyncio
WAIT_LIMIT_S = 15.0


async def wait_for_health(creditd: Harness, expected: int) -> None:
    stub = health_pb2_grpc.HealthStub(creditd.channel)
    deadline = asyncio.get_running_loop().time() + WAIT_LIMIT_S
    while asyncio.get_running_loop().time() < deadline:
        answer = await stub.Check(health_pb2.HealthCheckRequest(service="creditd.v1.CreditControl"))
        if answer.status == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"health did not become {expected}")


async def test_health_follows_redis_stop_and_start(tmp_path: Path, settings: Settings) -> None:
    own_redis = EmbeddedRedis(tmp_path / "redis")
    own_redis.start()
    quick = msgspec.structs.replace(
        settings, redis=msgspec.structs.replace(settings.redis, health_check_interval_s=0.05, call_timeout_s=0.5)
    )
    server = CreditdServer(quick, own_redis.url, "127.0.0.1:0", daytime_clock())
    await server.start()
    client = redis.Redis.from_url(own_redis.url)
    creditd = Harness(server, client, quick)
    try:
        await creditd.create_account("66810100000", balance=1000)
        own_redis.stop()
        await wait_for_health(creditd, health_pb2.HealthCheckResponse.NOT_SERVING)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await creditd.charge("s1", INITIAL, 0, "66810100000", [(DATA, 0, 0)])
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and "redis" in refused.value.details()

        own_redis.start()
        client.function_delete("creditd")  # as if Redis had come back without its functions
        await wait_for_health(creditd, health_pb2.HealthCheckResponse.SERVING)
        answer = await creditd.charge("s1", INITIAL, 0, "66810100000", [(DATA, 0, 0)])
        assert answer.result == pb.SUCCESS
        assert (await creditd.get("66810100000")).reserved == 100
    finally:
        await creditd.close()
        await server.stop(0)
        client.close()
        own_redis.stop()


async def test_runs_as_a_restricted_acl_user_and_refuses_a_wrong_password(tmp_path: Path, settings: Settings) -> None:
    own_redis = EmbeddedRedis(tmp_path / "redis")
    own_redis.start()
    admin = redis.Redis.from_url(own_redis.url)
    try:
        # creditd's keys only, and no CONFIG, FLUSH* or DEBUG: what an operator would grant it
        admin.execute_command(
            "ACL",
            "SETUSER",
            "creditd",
            "on",
            ">s3cret-pw",
            "~cd:*",
            "&*",
            "+@all",
            "-config",
            "-flushall",
            "-flushdb",
            "-debug",
            "-shutdown",
        )
        url = f"unix://creditd:s3cret-pw@{own_redis.socket_path}"
        server = CreditdServer(settings, url, "127.0.0.1:0", daytime_clock())
        await server.start()  # CONFIG is denied: it warns instead of checking noeviction, and starts
        creditd = Harness(server, admin, settings)
        try:
            await creditd.create_account("66810109999", balance=500)
            answer = await creditd.charge("s1", INITIAL, 0, "66810109999", [(DATA, 0, 0)])
            assert answer.result == pb.SUCCESS
        finally:
            await creditd.close()
            await server.stop(0)
        wrong = CreditdServer(settings, f"unix://creditd:wrong@{own_redis.socket_path}", "127.0.0.1:0", daytime_clock())
        with pytest.raises(Unavailable) as refused:
            await wrong.start()
        assert "cannot reach" in refused.value.message and "wrong" not in refused.value.message
        await wrong.stop(0)
    finally:
        admin.close()
        own_redis.stop()
