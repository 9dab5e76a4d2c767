"""Buckets over time, with the clock moved: an expired bucket leaves with a ledger entry (amount 0)
and a bundle_expired event, lazily on the account's next request or by the sweeper through the due
index; a bucket still reserved by a session waits for the session's report, which consumes what was
granted from it; a grant from a bucket is valid until the bucket expires at the latest; and usage
events fire as a bundle is consumed (bundle_nearly_used at the plan's 80 %, bundle_used_up at 0), in the
order the buckets are consumed in when one report consumes several (both priority orders of two ids)."""

from __future__ import annotations

import pytest

from creditd.v1 import creditd_pb2 as pb
from tests.harness import DATA, EVENT, INITIAL, MB, SMS, TERMINATE, Harness

pytestmark = pytest.mark.asyncio
ACCOUNT = "66821210000"
DAY_S = 86400


async def buy(creditd: Harness, bundle_id: str, key: str) -> pb.Account:
    request = pb.PurchaseBundleRequest(account_id=ACCOUNT, bundle_id=bundle_id, idempotency_key=key)
    return await creditd.accounts.PurchaseBundle(request)


async def test_an_expired_bucket_leaves_on_the_next_request(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=20_000)
    (bucket,) = (await buy(creditd, "sms_50", "b1")).buckets
    assert bucket.amount == 50 and 0 <= creditd.clock.now_ms() + 30 * DAY_S * 1000 - bucket.expires_at_ms < 5_000
    creditd.clock.advance(30 * DAY_S - 1)
    assert (await creditd.charge("sms-1", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])).grants[0].charged == 0
    assert len((await creditd.get(ACCOUNT)).buckets) == 1  # not yet: 1 s to go
    creditd.clock.advance(2)
    await creditd.top_up(ACCOUNT, 100, "t1")
    card = await creditd.get(ACCOUNT)
    assert list(card.buckets) == [] and card.balance == 20_000 - 1_900 + 100
    expiry = [entry for entry in await creditd.ledger(ACCOUNT) if entry.kind == "expiry"]
    assert len(expiry) == 1 and expiry[0].amount == 0 and expiry[0].time_ms == bucket.expires_at_ms
    assert f"bucket {bucket.bucket_id} expired with 49 left" in expiry[0].reference
    assert ("bundle_expired", f"{bucket.bucket_id} 49") in creditd.events_of(ACCOUNT)
    sms = await creditd.charge("sms-2", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])
    assert sms.grants[0].charged == 50  # money now


async def test_the_sweeper_expires_buckets_of_idle_accounts(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=20_000)
    await buy(creditd, "voice_100min", "b1")
    sweeper = creditd.server.sweeper
    assert (await sweeper.sweep_once()).due_accounts == 0
    creditd.clock.advance(30 * DAY_S + 1)
    assert (await sweeper.sweep_once()).due_accounts == 1
    assert list((await creditd.get(ACCOUNT)).buckets) == []
    assert [kind for kind, _ in creditd.events_of(ACCOUNT)].count("bundle_expired") == 1
    assert (await sweeper.sweep_once()).due_accounts == 0  # off the due index


async def test_a_reserved_bucket_waits_for_its_session_and_the_grant_ends_at_expiry(creditd: Harness) -> None:
    expires_at_ms = creditd.clock.now_ms() + 120_000
    bucket = pb.Bucket(
        bucket_id="promo", unit=pb.BYTES, remaining=50 * MB, exhaustion_policy=pb.OVERAGE, expires_at_ms=expires_at_ms
    )
    await creditd.create_account(ACCOUNT, balance=1_000, buckets=[bucket])
    grant = (await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 20 * MB, 0)])).grants[0]
    assert grant.granted == 20 * MB and 119 <= grant.validity_time_s <= 120  # not the tariff's 600 s
    creditd.clock.advance(130)
    await creditd.server.sweeper.sweep_once()
    (held,) = (await creditd.get(ACCOUNT)).buckets
    assert (held.remaining, held.reserved) == (50 * MB, 20 * MB)  # still held by the session
    done = await creditd.charge("s1", TERMINATE, 1, ACCOUNT, [(DATA, 0, 15 * MB)])
    assert done.grants[0].charged == 0  # granted from the bucket before it expired: paid by it
    card = await creditd.get(ACCOUNT)
    assert list(card.buckets) == [] and card.balance == 1_000
    expiry = [entry for entry in await creditd.ledger(ACCOUNT) if entry.kind == "expiry"]
    assert len(expiry) == 1 and "with 35000000 left" in expiry[0].reference


async def test_bundle_usage_events_at_80_and_100_percent(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=20_000)
    (bucket,) = (await buy(creditd, "sms_50", "b1")).buckets

    def usage_events() -> list[tuple[str, str]]:
        return [event for event in creditd.events_of(ACCOUNT) if event[0].startswith("bundle_") and "used" in event[0]]

    for n in range(39):
        await creditd.charge(f"sms-{n}", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])
    assert usage_events() == []  # 39 of 50 used: 78 %
    await creditd.charge("sms-39", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])
    assert usage_events() == [("bundle_nearly_used", f"{bucket.bucket_id} 80")]
    for n in range(40, 50):
        await creditd.charge(f"sms-{n}", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])
    assert usage_events()[-1] == ("bundle_used_up", bucket.bucket_id) and len(usage_events()) == 2
    assert (await creditd.charge("sms-50", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])).grants[0].charged == 50
    assert len(usage_events()) == 2


@pytest.mark.parametrize("first", ["aa", "zz"])
async def test_usage_events_of_buckets_consumed_in_one_report_come_in_consumption_order(
    creditd: Harness, first: str
) -> None:
    # one of the two priority orders differs from the order Lua's table lists the buckets in
    second = "zz" if first == "aa" else "aa"
    alike = {"unit": pb.BYTES, "remaining": 10 * MB, "exhaustion_policy": pb.OVERAGE}
    buckets = [pb.Bucket(bucket_id=first, priority=1, **alike), pb.Bucket(bucket_id=second, priority=2, **alike)]
    await creditd.create_account(ACCOUNT, balance=1_000, buckets=buckets)
    grant = (await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 10 * MB, 0)])).grants[0]
    assert grant.granted == 10 * MB
    await creditd.charge("s1", TERMINATE, 1, ACCOUNT, [(DATA, 0, 18 * MB)])
    events = [event for event in creditd.events_of(ACCOUNT) if event[0] in ("bundle_used_up", "bundle_nearly_used")]
    assert events == [("bundle_used_up", first), ("bundle_nearly_used", f"{second} 80")]
