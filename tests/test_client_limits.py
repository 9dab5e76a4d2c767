"""Limits on calls in flight: calls are bounded per caller and released when the call ends (also,
through a real server, when it fails), callers do not share budgets, and the token bucket refuses
once the burst is spent and refills at its rate. The whole server's bound (limits.max_concurrent_rpcs)
counts every caller's calls together and gives a slot back when a call leaves; through a real
server allowing two, two open notification streams leave a third call RESOURCE_EXHAUSTED, naming
the setting."""

from __future__ import annotations

import time

import grpc
import msgspec
import pytest

from creditd.api.client_limits import ClientLimits
from creditd.config.settings import Settings
from creditd.errors import ResourceExhausted
from creditd.v1 import creditd_pb2 as pb
from tests.harness import refused_while_full, started_server


def test_in_flight_is_bounded_per_caller_and_released() -> None:
    limits = ClientLimits(max_in_flight=2, rate_per_s=1, burst=1, max_server_in_flight=10)
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


def test_the_whole_server_bound_counts_every_caller() -> None:
    limits = ClientLimits(max_in_flight=2, rate_per_s=1, burst=1, max_server_in_flight=3)
    limits.enter("pgw1")
    limits.enter("pgw1")
    limits.enter("pgw2")
    with pytest.raises(ResourceExhausted) as refused:
        limits.enter("pgw3")  # a caller with nothing in flight, but the server is full
    assert refused.value.message == "server: 3 calls already in flight (limits.max_concurrent_rpcs); retry"
    with pytest.raises(ResourceExhausted):
        limits.enter("pgw1")  # the server's bound is checked first
    limits.leave("pgw1")
    limits.enter("pgw3")
    with pytest.raises(ResourceExhausted):
        limits.enter("pgw2")


@pytest.mark.asyncio
async def test_the_whole_server_refuses_past_its_bound(redis_server, redis_client, settings: Settings) -> None:
    two = msgspec.structs.replace(settings, limits=msgspec.structs.replace(settings.limits, max_concurrent_rpcs=2))
    async with started_server(two, redis_server.url, redis_client) as creditd:
        await creditd.create_account("66800000406", balance=10)
        assert (await creditd.get("66800000406")).balance == 10  # served while the server has room
        streams = [
            creditd.credit_control.WatchNotifications(pb.WatchNotificationsRequest(gateway_id=gateway))
            for gateway in ("pgw1", "pgw2")
        ]
        refused = await refused_while_full(creditd, "66800000406")
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused
        assert "limits.max_concurrent_rpcs" in (refused.details() or "")
        for stream in streams:
            stream.cancel()


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
    limits = ClientLimits(max_in_flight=1, rate_per_s=50, burst=3, max_server_in_flight=10)
    for _ in range(3):
        limits.take_token("crm")
    with pytest.raises(ResourceExhausted):
        limits.take_token("crm")
    limits.take_token("bank")  # its own bucket
    time.sleep(0.05)  # 50/s: at least two tokens back
    limits.take_token("crm")
