"""Buckets before money: consumption order (priority, then earliest expiry, then id; expired buckets
skipped), and the data exhaustion policies CAP (stop, final grant only from the last bucket, use
beyond it free), THROTTLE (free at the plan's reduced rate) and OVERAGE (fall through to money).
Buckets are given at account creation."""

from __future__ import annotations

import pytest

from creditd.v1 import creditd_pb2 as pb
from tests.harness import DATA, INITIAL, MB, TERMINATE, UPDATE, VOICE, Harness

pytestmark = pytest.mark.asyncio
ACCOUNT = "66822220000"


def bucket(
    bucket_id: str, unit: int, amount: int, policy: int = pb.EXHAUSTION_POLICY_UNSPECIFIED, **fields: object
) -> pb.Bucket:
    return pb.Bucket(bucket_id=bucket_id, unit=unit, remaining=amount, exhaustion_policy=policy, **fields)


def buckets_of(card: pb.Account) -> dict[str, tuple[int, int]]:
    return {b.bucket_id: (b.remaining, b.reserved) for b in card.buckets}


async def test_bucket_pays_first_and_money_pays_usage_beyond_it(creditd: Harness) -> None:
    await creditd.create_account(
        ACCOUNT, balance=1000, buckets=[bucket("minutes", pb.SECONDS, 120, rating_groups=[VOICE])]
    )
    grant = (await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])).grants[0]
    assert grant.granted == 120 and grant.charged == 0
    card = await creditd.get(ACCOUNT)
    assert card.reserved == 0 and buckets_of(card) == {"minutes": (120, 120)}
    done = await creditd.charge("s1", TERMINATE, 1, ACCOUNT, [(VOICE, 0, 150)])
    assert done.grants[0].charged == 100  # 30 s past the bundle: one 60-s block of money
    card = await creditd.get(ACCOUNT)
    assert (card.balance, buckets_of(card)) == (900, {"minutes": (0, 0)})
    creditd.assert_audit_clean()


async def test_consumption_order_is_priority_then_earliest_expiry(creditd: Harness) -> None:
    now_ms = creditd.clock.now_ms()
    await creditd.create_account(
        ACCOUNT,
        balance=1000,
        buckets=[
            bucket("late", pb.BYTES, 5 * MB, pb.OVERAGE, priority=1, expires_at_ms=now_ms + 86_400_000),
            bucket("soon", pb.BYTES, 5 * MB, pb.OVERAGE, priority=1, expires_at_ms=now_ms + 3_600_000),
            bucket("expired", pb.BYTES, 5 * MB, pb.OVERAGE, priority=0, expires_at_ms=now_ms - 1),
            bucket("last", pb.BYTES, 5 * MB, pb.OVERAGE, priority=2),
        ],
    )
    first = await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 2 * MB, 0)])
    assert first.grants[0].granted == 2 * MB
    assert buckets_of(await creditd.get(ACCOUNT))["soon"] == (5 * MB, 2 * MB)
    await creditd.charge("s1", UPDATE, 1, ACCOUNT, [(DATA, 8 * MB, 2 * MB)])
    card = await creditd.get(ACCOUNT)
    assert buckets_of(card)["soon"] == (3 * MB, 3 * MB)  # a grant takes one bucket: what "soon" has left
    await creditd.charge("s1", UPDATE, 2, ACCOUNT, [(DATA, 8 * MB, 3 * MB)])
    card = await creditd.get(ACCOUNT)
    assert buckets_of(card)["soon"] == (0, 0) and buckets_of(card)["late"] == (5 * MB, 5 * MB)
    assert "expired" not in buckets_of(card) and card.balance == 1000  # it left at the first request
    creditd.assert_audit_clean()


async def test_buckets_alike_in_priority_and_expiry_are_consumed_in_order_of_id(creditd: Harness) -> None:
    expires_at_ms = creditd.clock.now_ms() + 86_400_000
    await creditd.create_account(
        ACCOUNT,
        balance=1000,
        buckets=[
            bucket(name, pb.BYTES, 5 * MB, pb.OVERAGE, priority=1, expires_at_ms=expires_at_ms)
            for name in ("b-second", "a-first", "c-third")
        ],
    )
    await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 2 * MB, 0)])
    reserved = {name: held for name, (_, held) in buckets_of(await creditd.get(ACCOUNT)).items()}
    assert reserved == {"a-first": 2 * MB, "b-second": 0, "c-third": 0}
    creditd.assert_audit_clean()


async def test_cap_bucket_keeps_data_within_the_bundle(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000, buckets=[bucket("data_cap", pb.BYTES, 5 * MB, pb.CAP)])
    grant = (await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])).grants[0]
    assert grant.granted == 5 * MB and grant.final_unit_action == pb.UnitGrant.REDIRECT
    answer = await creditd.charge("s1", UPDATE, 1, ACCOUNT, [(DATA, 0, 5 * MB)])
    (after,) = answer.grants
    assert (after.result, after.granted, after.charged) == (pb.CREDIT_LIMIT_REACHED, 0, 0)
    assert after.final_unit_action == pb.UnitGrant.REDIRECT
    assert (await creditd.get(ACCOUNT)).balance == 1000  # never a surprise overage charge
    creditd.assert_audit_clean()


async def test_a_cap_grant_is_final_only_from_the_last_bucket_and_use_beyond_it_is_free(creditd: Harness) -> None:
    caps = [bucket(f"cap-{n}", pb.BYTES, 5 * MB, pb.CAP, priority=n) for n in (1, 2)]
    await creditd.create_account(ACCOUNT, balance=1000, buckets=caps)
    first = (await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])).grants[0]
    assert (first.granted, first.final_unit_action) == (5 * MB, pb.UnitGrant.NONE)  # cap-2 is left
    last = (await creditd.charge("s1", UPDATE, 1, ACCOUNT, [(DATA, 0, 5 * MB)])).grants[0]
    assert (last.granted, last.final_unit_action) == (5 * MB, pb.UnitGrant.REDIRECT)
    done = (await creditd.charge("s1", TERMINATE, 2, ACCOUNT, [(DATA, 0, 7 * MB)])).grants[0]
    assert done.charged == 0  # 2 MB beyond the buckets: CAP forbids money, so free
    card = await creditd.get(ACCOUNT)
    assert card.balance == 1000 and {name: left for name, (left, _) in buckets_of(card).items()} == {
        "cap-1": 0,
        "cap-2": 0,
    }
    creditd.assert_audit_clean()


async def test_throttle_bucket_continues_free_at_the_reduced_rate(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000, buckets=[bucket("data_slow", pb.BYTES, MB, pb.THROTTLE)])
    await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])
    answer = await creditd.charge("s1", UPDATE, 1, ACCOUNT, [(DATA, 0, 3 * MB)])
    (grant,) = answer.grants
    assert (grant.result, grant.throttled, grant.max_bitrate_kbps, grant.granted) == (pb.SUCCESS, True, 256, 10 * MB)
    assert grant.charged == 0
    done = await creditd.charge("s1", TERMINATE, 2, ACCOUNT, [(DATA, 0, 7 * MB)])
    assert done.grants[0].charged == 0
    card = await creditd.get(ACCOUNT)
    assert (card.balance, card.reserved) == (1000, 0)
    creditd.assert_audit_clean()


async def test_overage_bucket_falls_through_to_money(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000, buckets=[bucket("data_over", pb.BYTES, MB, pb.OVERAGE)])
    await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])
    answer = await creditd.charge("s1", UPDATE, 1, ACCOUNT, [(DATA, 0, MB)])
    (grant,) = answer.grants
    assert (grant.granted, grant.throttled) == (10 * MB, False)
    assert (await creditd.get(ACCOUNT)).reserved == 100
    done = await creditd.charge("s1", TERMINATE, 2, ACCOUNT, [(DATA, 0, 4 * MB)])
    assert done.grants[0].charged == 40
    creditd.assert_audit_clean()
