"""Many concurrent clients on one account: 200 sessions from 8 gateway connections on an account with
a small balance, every request sent twice at the same moment (a retransmission racing the original),
top-ups arriving meanwhile, some of them twice. Proves that reservations never exceed what available
allowed, that duplicates apply once, and that at the end balance = start + top-ups - sum(charged),
exactly, with a clean audit."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from tests.harness import DATA, INITIAL, MB, TERMINATE, UPDATE, VOICE, Harness, charge_request

pytestmark = pytest.mark.asyncio
ACCOUNT = "66866660000"
SESSIONS = 200
GATEWAYS = 8
START_BALANCE = 3000
PRICE = {DATA: (10, MB), VOICE: (100, 60)}  # per block, block size


def money_for(rating_group: int, units: int) -> int:
    price, block = PRICE[rating_group]
    return -(-units // block) * price


async def send_twice(stub: pb_grpc.CreditControlStub, request: pb.ChargeRequest) -> pb.ChargeAnswer:
    first, second = await asyncio.gather(stub.Charge(request), stub.Charge(request))
    assert first.SerializeToString() == second.SerializeToString()
    return first


async def test_two_hundred_sessions_on_one_small_account(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=START_BALANCE)
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{creditd.server.port}") for _ in range(GATEWAYS)]
    stubs = [pb_grpc.CreditControlStub(channel) for channel in channels]
    try:
        groups = {n: DATA if n % 2 else VOICE for n in range(SESSIONS)}

        def request(n: int, kind: int, number: int, used: int = 0) -> pb.ChargeRequest:
            return charge_request(
                f"s{n}", kind, number, ACCOUNT, [(groups[n], 0, used)], gateway_id=f"gw{n % GATEWAYS}"
            )

        initials = await asyncio.gather(
            *(send_twice(stubs[n % GATEWAYS], request(n, INITIAL, 0)) for n in range(SESSIONS))
        )
        granted = {n: answer.grants[0].granted for n, answer in enumerate(initials)}
        reserved_by_grants = sum(money_for(groups[n], units) for n, units in granted.items())
        card = await creditd.get(ACCOUNT)
        assert card.reserved == reserved_by_grants <= START_BALANCE
        assert card.available >= 0
        assert sum(1 for a in initials if a.result == pb.CREDIT_LIMIT_REACHED) > 0  # the balance did run out

        open_sessions = [n for n in range(SESSIONS) if granted[n] > 0]
        # Usage: most use what they got, some twice as much (debt is allowed for real usage).
        used = {n: granted[n] * (2 if n % 7 == 0 else 1) for n in open_sessions}
        top_ups = [(f"pay{n}", 100 + n) for n in range(10)]
        updates = [send_twice(stubs[n % GATEWAYS], request(n, UPDATE, 1, used[n] // 2)) for n in open_sessions]
        payments = [creditd.top_up(ACCOUNT, amount, key) for key, amount in top_ups + top_ups[:5]]
        update_answers = await asyncio.gather(*updates)
        await asyncio.gather(*payments)
        terminations = [
            send_twice(stubs[n % GATEWAYS], request(n, TERMINATE, 2, used[n] - used[n] // 2)) for n in open_sessions
        ]
        terminate_answers = await asyncio.gather(*terminations)

        charged = sum(a.grants[0].charged for a in (*update_answers, *terminate_answers))
        card = await creditd.get(ACCOUNT)
        assert (card.reserved, card.open_sessions) == (0, 0)
        assert card.balance == START_BALANCE + sum(amount for _, amount in top_ups) - charged
        report = creditd.assert_audit_clean()
        assert report.amounts_by_kind["charge"] == -charged
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))


async def test_charge_batch_applies_each_item_independently_and_once(creditd: Harness) -> None:
    accounts = [f"6687777{n:04d}" for n in range(50)]
    for account_id in accounts:
        await creditd.create_account(account_id, balance=500)
    batch = [charge_request(f"b{n}", INITIAL, 0, account_id, [(VOICE, 0, 0)]) for n, account_id in enumerate(accounts)]
    batch += batch[:10]  # retransmitted items inside the same batch
    answers = (await creditd.credit_control.ChargeBatch(pb.ChargeBatchRequest(requests=batch))).answers
    assert [a.session_id for a in answers] == [r.session_id for r in batch]
    assert all(a.result == pb.SUCCESS and a.grants[0].granted == 300 for a in answers)
    for account_id in accounts:
        assert (await creditd.get(account_id)).reserved == 500
    creditd.assert_audit_clean()
