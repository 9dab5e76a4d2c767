"""The Redis floor: creditd's own `charge` function called straight from one Python process in
pipelines (EVENT requests, one SMS each, on accounts of their own), with no gRPC and no server; on
a Redis Cluster the client splits each pipeline by node."""

from __future__ import annotations

import asyncio
import time

from creditd.core.accounts import NewAccount, create_account_args
from creditd.settings import RedisSettings
from creditd.store.connection import AnyRedis, connect
from creditd.store.keys import Keys
from loadtest.report import Recorder

PIPELINE_CALLS = 100
CONCURRENT_PIPELINES = 4
FLOOR_ACCOUNTS = 100
EVENT, SMS = 4, 3


async def create_floor_accounts(client: AnyRedis, keys: Keys, now_ms: int) -> list[str]:
    accounts = [f"6699{n:07d}" for n in range(FLOOR_ACCOUNTS)]
    pipe = client.pipeline(transaction=False)
    for account_id in accounts:
        key_list = keys.account_call(account_id)
        args = create_account_args(NewAccount(account_id, "standard", 10**12), now_ms, "loadtest")
        pipe.execute_command("FCALL", "create_account", len(key_list), *key_list, *args)
    await pipe.execute()
    return accounts


async def measure_redis_floor(url: str, partitions: int, duration_s: float) -> tuple[Recorder, float]:
    client = connect(url, RedisSettings())  # any topology: on a cluster, one pipeline per node
    keys, recorder = Keys(partitions), Recorder()
    try:
        accounts = await create_floor_accounts(client, keys, int(time.time() * 1000))
        deadline = time.monotonic() + duration_s
        serial = 0

        async def pipelines(worker: int) -> None:
            nonlocal serial
            while time.monotonic() < deadline:
                pipe = client.pipeline(transaction=False)
                now_ms = int(time.time() * 1000)
                for _ in range(PIPELINE_CALLS):
                    serial += 1
                    account_id, session_id = accounts[serial % len(accounts)], f"floor-{worker}-{serial}"
                    key_list = keys.session_call(account_id, "floor", session_id)
                    args = (now_ms, EVENT, 0, account_id, "floor", session_id, 1, SMS, 0, 0, "loadtest")
                    pipe.execute_command("FCALL", "charge", len(key_list), *key_list, *args)
                started = time.perf_counter()
                await pipe.execute()
                recorder.record(time.perf_counter() - started, PIPELINE_CALLS)

        started = time.perf_counter()
        await asyncio.gather(*(pipelines(worker) for worker in range(CONCURRENT_PIPELINES)))
        return recorder, time.perf_counter() - started
    finally:
        await client.aclose()
