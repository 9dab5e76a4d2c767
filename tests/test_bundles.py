"""Bundles from the plan's catalogue: PurchaseBundle debits the price and adds the bucket once per
idempotency key, tells the gateways holding sessions to re-authorise, and the bucket is then
consumed before money with its exhaustion policy; refused without enough money (a purchase never
exhausts credit), when suspended, for an unknown bundle, or for a key reused with another bundle."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from creditd.v1 import creditd_pb2 as pb
from tests.harness import DATA, INITIAL, UPDATE, VOICE_IN, Harness

pytestmark = pytest.mark.asyncio
ACCOUNT = "66820200000"
GB = 1_000_000_000


def purchase(bundle_id: str, key: str) -> pb.PurchaseBundleRequest:
    return pb.PurchaseBundleRequest(account_id=ACCOUNT, bundle_id=bundle_id, idempotency_key=key)


async def test_purchase_debits_once_adds_the_bucket_and_reauthorises(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=20_000)
    await creditd.charge("call-1", INITIAL, 0, ACCOUNT, [(VOICE_IN, 0, 0)], gateway_id="pgw1")
    watch = creditd.credit_control.WatchNotifications(pb.WatchNotificationsRequest(gateway_id="pgw1"))
    await asyncio.sleep(0.2)
    card = await creditd.accounts.PurchaseBundle(purchase("data_1gb", "buy-1"))
    assert card.balance == 20_000 - 9_900
    (bucket,) = card.buckets
    assert (bucket.unit, bucket.remaining, list(bucket.rating_groups)) == (pb.BYTES, GB, [DATA])
    assert bucket.exhaustion_policy == pb.CAP and bucket.expires_at_ms > creditd.clock.now_ms()
    notice = await asyncio.wait_for(watch.read(), 10)
    assert (notice.kind, notice.session_id, notice.reason) == (
        pb.Notification.REAUTH,
        "call-1",
        "bundle_purchased data_1gb",
    )
    watch.cancel()

    again = await creditd.accounts.PurchaseBundle(purchase("data_1gb", "buy-1"))
    assert again.balance == card.balance and len(again.buckets) == 1
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await creditd.accounts.PurchaseBundle(purchase("sms_50", "buy-1"))
    assert conflict.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "idempotency_key" in conflict.value.details()
    entries = await creditd.ledger(ACCOUNT, limit=1)
    assert (entries[0].kind, entries[0].amount, entries[0].reference) == ("purchase", -9_900, "bundle data_1gb buy-1")


async def test_the_bought_bundle_is_used_first_and_caps_data(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=20_000)
    await creditd.accounts.PurchaseBundle(purchase("data_1gb", "buy-1"))
    grant = (await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, GB, 0)])).grants[0]
    assert (grant.granted, grant.final_unit_action) == (GB, pb.UnitGrant.REDIRECT)  # capped: the whole bundle
    after = await creditd.charge("s1", UPDATE, 1, ACCOUNT, [(DATA, 0, GB)])
    assert after.grants[0].result == pb.CREDIT_LIMIT_REACHED and after.grants[0].charged == 0
    assert (await creditd.get(ACCOUNT)).balance == 20_000 - 9_900


@pytest.mark.parametrize(
    ("balance", "bundle_id", "code", "field"),
    [
        (9_900, "data_1gb", grpc.StatusCode.FAILED_PRECONDITION, "bundle_id"),  # would leave exactly zero
        (100_000, "gold_unlimited", grpc.StatusCode.INVALID_ARGUMENT, "bundle_id"),
    ],
)
async def test_refused_purchases_change_nothing(
    creditd: Harness, balance: int, bundle_id: str, code, field: str
) -> None:
    await creditd.create_account(ACCOUNT, balance=balance)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await creditd.accounts.PurchaseBundle(purchase(bundle_id, "buy-1"))
    assert refused.value.code() == code and refused.value.details().startswith(field + ":")
    card = await creditd.get(ACCOUNT)
    assert (card.balance, len(card.buckets)) == (balance, 0)


async def test_a_suspended_account_cannot_buy(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=100_000)
    await creditd.accounts.SetStatus(
        pb.SetStatusRequest(account_id=ACCOUNT, status=pb.ONE_WAY_SUSPENDED, reason="ADMIN")
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await creditd.accounts.PurchaseBundle(purchase("sms_50", "buy-1"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
