"""The Redis floor: creditd's own `charge` function called straight from one Python process in
pipelines (EVENT requests, one SMS each, on accounts of their own), with no gRPC and no server; on
a Redis Cluster the client splits each pipeline by node."""

from __future__ import annotations

import asyncio
import time

from creditd.config.settings import RedisSettings
from creditd.store.calls import Calls, ChargeSpec, NewAccount, UnitSpec, fcall_words
from creditd.store.codes import RequestType
from creditd.store.connection import AnyRedis, connect
from loadtest.report import Recorder

PIPELINE_CALLS = 100
CONCURRENT_PIPELINES = 4
FLOOR_ACCOUNTS = 100
SMS_RATING_GROUP = 3
THAI_NUMBER = "66812345678"


async def create_floor_accounts(client: AnyRedis, calls: Calls, now_ms: int) -> list[str]:
    accounts = [f"6699{n:07d}" for n in range(FLOOR_ACCOUNTS)]
    pipe = client.pipeline(transaction=False)
    for account_id in accounts:
        command = calls.create_account(NewAccount(account_id, "standard", 10**12), now_ms, "loadtest")
        pipe.execute_command(*fcall_words(command))
    await pipe.execute()
    return accounts


async def measure_redis_floor(url: str, partitions: int, duration_s: float) -> tuple[Recorder, float]:
    client = connect(url, RedisSettings())  # any topology: on a cluster, one pipeline per node
    calls, recorder = Calls(partitions), Recorder()
    try:
        accounts = await create_floor_accounts(client, calls, int(time.time() * 1000))
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
                    units = (UnitSpec(SMS_RATING_GROUP),)
                    request = ChargeSpec(
                        session_id, RequestType.EVENT, 0, account_id, "floor", units, called_party=THAI_NUMBER
                    )
                    pipe.execute_command(*fcall_words(calls.charge(request, now_ms, "loadtest")))
                started = time.perf_counter()
                await pipe.execute()
                recorder.record(time.perf_counter() - started, PIPELINE_CALLS)

        started = time.perf_counter()
        await asyncio.gather(*(pipelines(worker) for worker in range(CONCURRENT_PIPELINES)))
        return recorder, time.perf_counter() - started
    finally:
        await client.aclose()
