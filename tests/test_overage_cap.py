"""The plan's monthly data overage spend cap: data paid from money counts per billing cycle; a grant
never reserves beyond what the cap has left; once the cap is reached data is throttled (free, at
the plan's reduced bit rate, data_overage_cap_reached event) instead of charged; the next billing
cycle (starting on the account's billing cycle day, UTC) starts from zero. Voice is not affected.
Own settings: cap 200 satang (20 MB at 10 satang per MB)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import msgspec
import pytest
import pytest_asyncio
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditd.contract import lua_contract
from creditd.resources import lua_directory
from creditd.store.lua_values import lua_literal
from creditd.v1 import creditd_pb2 as pb
from tests.calendar_model import billing_cycle_of, cycle_start_ms
from tests.harness import DATA, INITIAL, MB, UPDATE, VOICE, Harness, started_server

ACCOUNT = "66822220001"
CAP = 200


@pytest_asyncio.fixture
async def capped(redis_server, redis_client, settings) -> AsyncIterator[Harness]:
    plan = msgspec.structs.replace(settings.plans["standard"], monthly_data_overage_cap_minor=CAP)
    capped_settings = msgspec.structs.replace(settings, plans={"standard": plan})
    async with started_server(capped_settings, redis_server.url, redis_client) as harness:
        yield harness
    harness.assert_audit_clean()


@pytest.mark.asyncio
async def test_the_cap_turns_data_into_throttling_until_the_next_cycle(capped: Harness) -> None:
    await capped.create_account(ACCOUNT, balance=10_000, billing_cycle_day=1)
    first = (await capped.charge("d1", INITIAL, 0, ACCOUNT, [(DATA, 15 * MB, 0)])).grants[0]
    assert (first.granted, first.throttled) == (15 * MB, False)
    second = (await capped.charge("d1", UPDATE, 1, ACCOUNT, [(DATA, 15 * MB, 15 * MB)])).grants[0]
    assert (second.charged, second.granted, second.throttled) == (150, 5 * MB, False)  # 50 left under the cap
    third = (await capped.charge("d1", UPDATE, 2, ACCOUNT, [(DATA, 15 * MB, 5 * MB)])).grants[0]
    assert (third.charged, third.throttled, third.max_bitrate_kbps) == (50, True, 256)
    assert third.granted == 15 * MB
    assert ("data_overage_cap_reached", str(CAP)) in capped.events_of(ACCOUNT)
    free = (await capped.charge("d1", UPDATE, 3, ACCOUNT, [(DATA, 15 * MB, 40 * MB)])).grants[0]
    assert (free.charged, free.throttled) == (0, True)
    voice = (await capped.charge("v1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])).grants[0]
    assert (voice.result, voice.throttled) == (pb.SUCCESS, False)
    card = await capped.get(ACCOUNT)
    assert (card.billing_cycle_day, card.data_overage_spent, card.data_overage_cap) == (1, CAP, CAP)
    assert card.balance == 10_000 - CAP

    next_cycle_ms = cycle_start_ms(billing_cycle_of(capped.clock.now_ms(), 1) + 1, 1)
    capped.clock.advance((next_cycle_ms - capped.clock.now_ms()) / 1000 + 1)
    assert (await capped.get(ACCOUNT)).data_overage_spent == 0
    renewed = (await capped.charge("d1", UPDATE, 4, ACCOUNT, [(DATA, 15 * MB, 1 * MB)])).grants[0]
    assert (renewed.charged, renewed.throttled, renewed.granted) == (0, False, 15 * MB)  # 1 MB used throttled: free
    await capped.charge("v1", UPDATE, 1, ACCOUNT, [(VOICE, 0, 0)])


@pytest.mark.asyncio
async def test_billing_cycle_day_defaults_to_the_day_of_creation_and_is_checked(capped: Harness) -> None:
    card = await capped.create_account(ACCOUNT)
    today = datetime.fromtimestamp(capped.clock.now_ms() / 1000, UTC).day
    assert card.billing_cycle_day == min(today, 28)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await capped.create_account("66822220002", billing_cycle_day=29)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("billing_cycle_day")


def lua_billing_cycle(client: redis.Redis) -> Any:
    """lua/lib/calendar.lua's billing_cycle_of, run by Redis itself through EVAL."""
    lib = lua_directory() / "lib"
    contract = f"local CONTRACT = {lua_literal(lua_contract())}"  # numbers.lua reads its bounds there
    source = "\n".join([contract, *((lib / name).read_text() for name in ("codes.lua", "numbers.lua", "calendar.lua"))])
    return client.register_script(source + "\nreturn billing_cycle_of(tonumber(ARGV[1]), tonumber(ARGV[2]))")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(now_ms=st.integers(0, 4_102_444_800_000), day=st.integers(1, 28))
def test_python_and_lua_agree_on_billing_cycles(redis_client: redis.Redis, now_ms: int, day: int) -> None:
    moment = datetime.fromtimestamp(now_ms / 1000, UTC)
    expected = moment.year * 12 + moment.month - 1 - (1 if moment.day < day else 0)
    assert billing_cycle_of(now_ms, day) == expected
    assert cycle_start_ms(expected, day) <= now_ms < cycle_start_ms(expected + 1, day)
    assert lua_billing_cycle(redis_client)(args=[now_ms, day]) == expected
