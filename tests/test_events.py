"""The event feed and gateway notifications over gRPC. Events come in one order across partitions
and an event id resumes the feed exactly: reading in two halves across a reconnect gives every event
once, also while many writers append concurrently. Gateways receive REAUTH when a suspended account
is resumed (and on one-way suspension), ABORT_SESSION on two-way suspension, only for their own
sessions, and a gateway that reconnects gets what it missed. An event out of order (a clock stepped
back) is still delivered, and counted."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import grpc
import pytest

from creditd import metrics
from creditd.store.keys import events_of_partition
from creditd.v1 import creditd_pb2 as pb
from tests.harness import EVENT, INITIAL, SMS, VOICE_IN, Harness

pytestmark = pytest.mark.asyncio
READ_LIMIT_S = 10.0
ACCOUNTS = [f"6681515{n:04d}" for n in range(12)]  # spread over several partitions


async def read(call, count: int) -> list:
    messages = []
    for _ in range(count):
        message = await asyncio.wait_for(call.read(), READ_LIMIT_S)
        assert message is not grpc.aio.EOF
        messages.append(message)
    return messages


async def start_watching(creditd: Harness, from_id: str = ""):
    # "From now" also delivers events of Redis' current millisecond (missing one is worse than
    # repeating one): leave the millisecond of the test's earlier writes before taking the position.
    await asyncio.sleep(0.005)
    call = creditd.accounts.WatchEvents(pb.WatchEventsRequest(from_id=from_id))
    await asyncio.sleep(0.2)  # the stream starts "from now": let it take its position
    return call


async def test_events_arrive_in_order_and_resume_exactly(creditd: Harness) -> None:
    call = await start_watching(creditd)
    for account_id in ACCOUNTS:
        await creditd.create_account(account_id, balance=100)
        await creditd.top_up(account_id, 5, "k1")
    first_half = await read(call, len(ACCOUNTS))
    call.cancel()
    resumed = creditd.accounts.WatchEvents(pb.WatchEventsRequest(from_id=first_half[-1].id))
    second_half = await read(resumed, len(ACCOUNTS))
    resumed.cancel()
    events = first_half + second_half
    # An account's events come in the order of its changes; across partitions, events of one
    # millisecond are ordered by (seq, partition), not by wall clock.
    per_account: dict[str, list[str]] = {}
    for event in events:
        per_account.setdefault(event.account_id, []).append(event.kind)
    assert per_account == {account_id: ["account_created", "topup"] for account_id in ACCOUNTS}
    keys = [tuple(int(part) for part in e.id.split("-")) for e in events]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    # Events of one millisecond on other partitions may come between an account's two events.
    details = {(e.kind, e.attributes["detail"]) for e in events}
    assert details == {("account_created", "standard"), ("topup", "5 bank")}


async def test_concurrent_writers_lose_and_repeat_nothing(creditd: Harness) -> None:
    for account_id in ACCOUNTS:
        await creditd.create_account(account_id, balance=100)
    call = await start_watching(creditd)
    writes = [creditd.top_up(account_id, n + 1, f"k{n}") for n in range(10) for account_id in ACCOUNTS]
    await asyncio.gather(*writes)
    half = len(writes) // 2
    received = await read(call, half)
    call.cancel()
    resumed = creditd.accounts.WatchEvents(pb.WatchEventsRequest(from_id=received[-1].id))
    received += await read(resumed, len(writes) - half)
    resumed.cancel()
    seen = Counter((e.kind, e.account_id, e.attributes["detail"]) for e in received)
    expected = Counter(("topup", a, f"{n + 1} bank") for n in range(10) for a in ACCOUNTS)
    assert seen == expected, f"missing {expected - seen}, unexpected {seen - expected}"


def out_of_order_count() -> float:
    return metrics.REGISTRY.get_sample_value("creditd_events_out_of_order_total") or 0.0


async def test_an_event_below_one_delivered_still_comes_and_is_counted(creditd: Harness) -> None:
    """What a Redis clock stepped back looks like to the feed, made with explicit stream ids: the
    event is delivered all the same (never dropped), and logged and counted for the operator."""
    call = await start_watching(creditd)
    now_ms = int(time.time() * 1000)
    fields = {"kind": "topup", "account_id": ACCOUNTS[0], "time_ms": now_ms}
    creditd.redis.xadd(events_of_partition(1), {**fields, "detail": "written first"}, id=f"{now_ms}-5")
    (first,) = await read(call, 1)
    counted_before = out_of_order_count()
    creditd.redis.xadd(events_of_partition(0), {**fields, "detail": "stamped earlier"}, id=f"{now_ms}-1")
    (second,) = await read(call, 1)
    call.cancel()
    assert (first.id, second.id) == (f"{now_ms}-5-1", f"{now_ms}-1-0")
    assert second.attributes["detail"] == "stamped earlier"
    assert out_of_order_count() == counted_before + 1


async def test_gateway_gets_reauth_on_resume_and_abort_on_two_way(creditd: Harness) -> None:
    account_id = ACCOUNTS[0]
    await creditd.create_account(account_id, balance=50)
    await creditd.create_account(ACCOUNTS[1], balance=1000)
    await creditd.charge("call-1", INITIAL, 0, account_id, [(VOICE_IN, 0, 0)], gateway_id="ims1")
    await creditd.charge("other", INITIAL, 0, ACCOUNTS[1], [(VOICE_IN, 0, 0)], gateway_id="pgw2")
    ims = creditd.credit_control.WatchNotifications(pb.WatchNotificationsRequest(gateway_id="ims1"))
    pgw = creditd.credit_control.WatchNotifications(pb.WatchNotificationsRequest(gateway_id="pgw2"))
    await asyncio.sleep(0.2)
    await creditd.charge("sms-1", EVENT, 0, account_id, [(SMS, 0, 0)], gateway_id="smsc")  # 50: one-way
    (suspended,) = await read(ims, 1)
    assert (suspended.kind, suspended.session_id, suspended.account_id) == (
        pb.Notification.REAUTH,
        "call-1",
        account_id,
    )
    assert suspended.reason == "suspended_one_way CREDIT"

    topped_up_at = time.monotonic()
    await creditd.top_up(account_id, 100, "pay-1")
    (resumed,) = await read(ims, 1)
    latency_s = time.monotonic() - topped_up_at
    print(f"REAUTH {latency_s * 1000:.0f} ms after the top-up")
    assert (resumed.kind, resumed.reason) == (pb.Notification.REAUTH, "resumed TOPUP")

    await creditd.accounts.SetStatus(
        pb.SetStatusRequest(account_id=account_id, status=pb.TWO_WAY_SUSPENDED, reason="FRAUD")
    )
    (aborted,) = await read(ims, 1)
    assert (aborted.kind, aborted.reason) == (pb.Notification.ABORT_SESSION, "suspended_two_way FRAUD")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(pgw.read(), 0.5)  # none of this concerns the other gateway
    ims.cancel()
    pgw.cancel()


async def test_reconnecting_gateway_gets_what_it_missed(creditd: Harness) -> None:
    account_id = ACCOUNTS[0]
    await creditd.create_account(account_id, balance=1000)
    await creditd.charge("call-1", INITIAL, 0, account_id, [(VOICE_IN, 0, 0)], gateway_id="ims1")
    first = creditd.credit_control.WatchNotifications(pb.WatchNotificationsRequest(gateway_id="ims1"))
    await asyncio.sleep(0.2)
    suspend = pb.SetStatusRequest(account_id=account_id, status=pb.ONE_WAY_SUSPENDED, reason="ADMIN")
    await creditd.accounts.SetStatus(suspend)
    await read(first, 1)
    first.cancel()
    resume = pb.SetStatusRequest(account_id=account_id, status=pb.ACTIVE, reason="ADMIN")
    await creditd.accounts.SetStatus(resume)  # while the gateway is away
    again = creditd.credit_control.WatchNotifications(pb.WatchNotificationsRequest(gateway_id="ims1"))
    (missed,) = await read(again, 1)
    assert (missed.kind, missed.reason) == (pb.Notification.REAUTH, "resumed ADMIN")
    again.cancel()


@pytest.mark.parametrize("from_id", ["x", "1-2", "1-2-999999", "-1-2-3"])
async def test_bad_position_is_refused(creditd: Harness, from_id: str) -> None:
    call = creditd.accounts.WatchEvents(pb.WatchEventsRequest(from_id=from_id))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call.read()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "from_id" in refused.value.details()
