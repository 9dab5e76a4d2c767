"""`redis.durability = "fsync"`: no answer leaves before WAITAOF confirmed its pipeline's writes on the
local AOF (and on `wait_replicas` replicas). Against a Redis of the test's own (a LocalServer, AOF on):

- answers wait for WAITAOF: the server's WAITAOF count grows with the answered calls (one per pipeline,
  so a ChargeBatch shares one), and with durability "written" it stays at nothing;
- a WAITAOF that cannot confirm (AOF turned off under the server; a replica asked for that does not
  exist, within wait_timeout_ms) answers UNAVAILABLE, never SUCCESS, and the caller's retry with the
  same key, once it can confirm, replays the one write;
- a Redis that cannot give WAITAOF (AOF off) is refused at start-up, naming the setting;
- on a Redis that fsyncs once a second (appendfsync everysec), where every answer would wait for the
  next background fsync, start-up warns, naming appendfsync; on appendfsync always it does not;
- the embedded server runs appendfsync always under "fsync" and everysec under "written" (through a
  real embedded server; `creditd serve`'s choice is checked by tests/test_crash.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import msgspec
import pytest
import redis

from creditd.config.settings import Durability, Settings
from creditd.devtools.local_topology import LocalServer
from creditd.errors import ConfigError
from creditd.store.embedded import EmbeddedRedis
from creditd.v1 import creditd_pb2 as pb
from tests.harness import EVENT, SMS, charge_request, library_client, started_server

pytestmark = pytest.mark.asyncio
ACCOUNT = "66858000001"


# How long a call waits for WAITAOF: where the test expects a confirmation, long enough for one fsync
# of the AOF on a disk the whole suite is writing to (200 ms once fell short under CI's load);
# where it expects none (a replica that does not exist), short, since the call waits all of it.
CONFIRMED_WAIT_MS = 1_500  # below redis.call_timeout_s (2 s)
REFUSED_WAIT_MS = 200


def durable(settings: Settings, durability: str = "fsync", replicas: int = 0) -> Settings:
    wait_timeout_ms = REFUSED_WAIT_MS if replicas else CONFIRMED_WAIT_MS
    redis_settings = msgspec.structs.replace(
        settings.redis, durability=durability, wait_replicas=replicas, wait_timeout_ms=wait_timeout_ms
    )
    return msgspec.structs.replace(settings, redis=redis_settings)


def waitaof_calls(admin: object) -> int:
    stats = admin.info("commandstats")  # type: ignore[attr-defined]
    return int(stats.get("cmdstat_waitaof", {}).get("calls", 0))


async def test_answers_wait_for_the_aof_fsync(tmp_path: Path, settings: Settings) -> None:
    with (
        LocalServer(tmp_path) as redis_server,
        library_client(redis_server.url, settings) as client,
        redis_server.admin(redis_server.server) as admin,
    ):
        async with started_server(durable(settings, "written"), redis_server.url, client) as harness:
            await harness.create_account(ACCOUNT, balance=10_000)
            await harness.top_up(ACCOUNT, 100, "written-1")
            assert waitaof_calls(admin) == 0

        async with started_server(durable(settings), redis_server.url, client) as harness:
            before = waitaof_calls(admin)
            for n in range(5):
                await harness.top_up(ACCOUNT, 100, f"fsync-{n}")
            assert waitaof_calls(admin) - before == 5
            batch = pb.ChargeBatchRequest(
                requests=[charge_request(f"sms-{n}", EVENT, 0, ACCOUNT, [(SMS, 0, 0)]) for n in range(20)]
            )
            before = waitaof_calls(admin)
            answers = (await harness.credit_control.ChargeBatch(batch)).answers
            assert [answer.result for answer in answers] == [pb.SUCCESS] * 20
            assert waitaof_calls(admin) - before == 1  # one fsync for the whole pipeline

            admin.config_set("appendonly", "no")
            try:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await harness.top_up(ACCOUNT, 700, "unconfirmed")
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
                assert "WAITAOF" in (refused.value.details() or "")
            finally:
                admin.config_set("appendonly", "yes")
            replayed = await harness.top_up(ACCOUNT, 700, "unconfirmed")
            assert replayed.replayed  # it was written; the retry finds it, once
            assert replayed.account.balance == 10_000 + 100 + 500 + 700 - 20 * 50
            harness.assert_audit_clean()

        async with started_server(durable(settings, replicas=1), redis_server.url, client) as harness:
            with pytest.raises(grpc.aio.AioRpcError) as no_replica:
                await harness.top_up(ACCOUNT, 100, "no-replica")
            assert no_replica.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "of 1 and 1" in (no_replica.value.details() or ""), no_replica.value.details()


async def test_fsync_durability_needs_the_aof_at_start_up(tmp_path: Path, settings: Settings) -> None:
    with (
        LocalServer(tmp_path) as redis_server,
        library_client(redis_server.url, settings) as client,
        redis_server.admin(redis_server.server) as admin,
    ):
        admin.config_set("appendonly", "no")
        with pytest.raises(ConfigError, match="redis.durability"):
            async with started_server(durable(settings), redis_server.url, client):
                pass


async def test_fsync_durability_warns_on_a_redis_that_fsyncs_once_a_second(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        LocalServer(tmp_path) as redis_server,
        library_client(redis_server.url, settings) as client,
        redis_server.admin(redis_server.server) as admin,
        caplog.at_level(logging.WARNING, logger="creditd.store.connection"),
    ):
        async with started_server(durable(settings), redis_server.url, client):
            assert "appendfsync is 'everysec'" in caplog.text
        caplog.clear()
        admin.config_set("appendfsync", "always")
        async with started_server(durable(settings), redis_server.url, client):
            assert "appendfsync" not in caplog.text
        caplog.clear()
        admin.config_set("appendfsync", "everysec")
        async with started_server(durable(settings, "written"), redis_server.url, client):
            assert "appendfsync" not in caplog.text  # "written" does not wait for the fsync


@pytest.mark.parametrize(("durability", "appendfsync"), [("written", "everysec"), ("fsync", "always")])
async def test_the_embedded_server_fsyncs_as_the_durability_needs(
    tmp_path: Path, durability: Durability, appendfsync: str
) -> None:
    with (
        EmbeddedRedis(tmp_path, durability=durability) as server,
        redis.Redis.from_url(server.url) as client,
    ):
        assert client.config_get("appendfsync") == {"appendfsync": appendfsync}
