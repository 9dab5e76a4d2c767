"""Per-caller limits: calls in flight are bounded per caller and released when the call ends (also,
through a real server, when it fails), callers do not share budgets, and the token bucket refuses
once the burst is spent and refills at its rate."""

from __future__ import annotations

import time

import grpc
import msgspec
import pytest

from creditd.api.client_limits import ClientLimits
from creditd.config.settings import Settings
from creditd.errors import ResourceExhausted
from tests.harness import started_server


def test_in_flight_is_bounded_per_caller_and_released() -> None:
    limits = ClientLimits(max_in_flight=2, rate_per_s=1, burst=1)
    limits.enter("pgw1")
    limits.enter("pgw1")
    with pytest.raises(ResourceExhausted) as refused:
        limits.enter("pgw1")
    assert "pgw1 already has 2 calls in flight" in refused.value.message
    limits.enter("pgw2")  # another caller has its own budget
    limits.leave("pgw2")
    limits.leave("pgw1")
    limits.enter("pgw1")  # the slot left is free again
    with pytest.raises(ResourceExhausted):
        limits.enter("pgw1")


@pytest.mark.asyncio
async def test_a_failed_call_gives_its_slot_back(redis_server, redis_client, settings: Settings) -> None:
    """Through a server allowing one call in flight per caller: calls that fail (NOT_FOUND) leave
    no slot taken, so the next call is served."""
    one = msgspec.structs.replace(settings, limits=msgspec.structs.replace(settings.limits, max_in_flight_per_client=1))
    async with started_server(one, redis_server.url, redis_client) as creditd:
        for _ in range(3):
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await creditd.get("66800000404")
            assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        await creditd.create_account("66800000405", balance=10)
        assert (await creditd.get("66800000405")).balance == 10


def test_token_bucket_refuses_past_the_burst_and_refills() -> None:
    limits = ClientLimits(max_in_flight=1, rate_per_s=50, burst=3)
    for _ in range(3):
        limits.take_token("crm")
    with pytest.raises(ResourceExhausted):
        limits.take_token("crm")
    limits.take_token("bank")  # its own bucket
    time.sleep(0.05)  # 50/s: at least two tokens back
    limits.take_token("crm")
