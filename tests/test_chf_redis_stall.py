"""creditd chf when Redis stops answering (SIGSTOP of a Redis of the test's own): an update gets a 503
ProblemDetails (NF_CONGESTION) within the call time-out, the next ones at once (the circuit is open),
never a 500; after SIGCONT the chf's probe closes the circuit within a few intervals and the SMF's
unchanged retransmission of that update is applied exactly once: the ledger holds one charge for it."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from creditd.clock import Clock
from creditd.config.settings import Settings
from creditd.store.calls import Calls
from creditd.store.embedded import EmbeddedRedis
from creditd.store.functions import call_all_sync
from creditd.store.replies import LEDGER_DECODER, Reply
from tests.chf_smf import (
    API,
    create_accounts,
    h2_client,
    pdu_request,
    ref_of,
    started_chf,
    time_stamp,
    unit_usage,
    used,
)
from tests.harness import MB, library_client

pytestmark = pytest.mark.asyncio
ACCOUNT = "66833334444"


async def test_a_stalled_redis_gets_503_then_the_retry_is_charged_once(settings: Settings, tmp_path: Path) -> None:
    redis_settings = msgspec.structs.replace(settings.redis, call_timeout_s=0.5, health_check_interval_s=0.2)
    own = msgspec.structs.replace(settings, redis=redis_settings)

    with EmbeddedRedis(tmp_path / "redis") as redis_server, library_client(redis_server.url, own) as client:
        assert redis_server.process is not None
        create_accounts(client, own, [ACCOUNT], 10_000)
        async with started_chf(own, redis_server.url, Clock()) as base, h2_client(base) as smf:
            created_at = time_stamp()
            create = await smf.post(
                API + "/chargingdata", json=pdu_request(ACCOUNT, 0, [unit_usage(1)], created_at=created_at)
            )
            assert create.status_code == 201, create.text
            ref = ref_of(create.headers["location"])
            update = pdu_request(
                ACCOUNT, 1, [unit_usage(1, requested_volume=MB, containers=[used(1, volume=MB)])], created_at=created_at
            )
            path = f"{API}/chargingdata/{ref}/update"
            os.kill(redis_server.process.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                stalled = await smf.post(path, json=update)
                assert (stalled.status_code, stalled.json()["cause"]) == (503, "NF_CONGESTION")
                assert time.monotonic() - started < 0.5 + 1.0
                refused = await smf.post(path, json=update)
                assert refused.status_code == 503
            finally:
                os.kill(redis_server.process.pid, signal.SIGCONT)
            deadline = time.monotonic() + 5
            answer: Any = None
            while time.monotonic() < deadline:
                answer = await smf.post(path, json=update)
                if answer.status_code != 503:
                    break
                await asyncio.sleep(0.1)
            assert answer.status_code == 200, answer.text
        reply = call_all_sync(client, [Calls(own.redis.partitions).list_ledger(ACCOUNT, 100, 0)])[0]
        assert isinstance(reply, Reply)
        charges = [
            (entry.reference, entry.amount) for entry in LEDGER_DECODER.decode(reply.body) if entry.kind == "charge"
        ]
        assert charges == [(f"nchf {ref} 1", -10)]
