"""At most once: a retransmitted (session, request number) gets the stored answer byte for byte and
changes nothing, also after TERMINATE and for EVENT; the same number with another payload and an
older number are refused; a function executed twice for one request (redis-py's retry after a
time-out) applies once; top-ups and account creation follow the same rule on their keys."""

from __future__ import annotations

import pytest

from creditd.v1 import creditd_pb2 as pb
from tests.harness import DATA, EVENT, INITIAL, SMS, TERMINATE, UPDATE, VOICE, Harness, charge_request, dump

pytestmark = pytest.mark.asyncio
ACCOUNT = "66833330000"


async def test_retransmissions_get_identical_bytes_and_change_nothing(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    steps = [
        charge_request("s1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0), (VOICE, 0, 0)]),
        charge_request("s1", UPDATE, 1, ACCOUNT, [(DATA, 0, 1_234_567)]),
        charge_request("s1", TERMINATE, 2, ACCOUNT, [(DATA, 0, 10), (VOICE, 0, 61)]),
        charge_request("e1", EVENT, 7, ACCOUNT, [(SMS, 0, 0)]),
    ]
    for request in steps:
        original = await creditd.credit_control.Charge(request)
        before = dump(creditd.redis)
        creditd.clock.advance(30)  # a retransmission arrives later: time must not change the answer
        for _ in range(3):
            again = await creditd.credit_control.Charge(request)
            assert again.SerializeToString() == original.SerializeToString()
        assert dump(creditd.redis) == before
    card = await creditd.get(ACCOUNT)
    # data 2 blocks (the final 10 bytes fall in the second, already paid), voice 2 minutes, one SMS
    assert card.balance == 1000 - 20 - 200 - 50
    creditd.assert_audit_clean()


async def test_same_number_with_another_payload_is_refused(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])
    await creditd.charge("s1", UPDATE, 1, ACCOUNT, [(DATA, 0, 1000)])
    before = dump(creditd.redis)
    changed = await creditd.charge("s1", UPDATE, 1, ACCOUNT, [(DATA, 0, 2000)])
    assert changed.result == pb.INVALID_REQUEST and changed.error.startswith("request_number:")
    older = await creditd.charge("s1", UPDATE, 0, ACCOUNT, [(DATA, 0, 1000)])
    assert older.result == pb.INVALID_REQUEST and "above the last applied 1" in older.error
    reused = await creditd.charge("s1", INITIAL, 5, ACCOUNT, [(DATA, 0, 0)])
    assert reused.result == pb.INVALID_REQUEST and reused.error.startswith("session_id:")
    assert dump(creditd.redis) == before


async def test_update_after_terminate_is_refused_but_terminate_replays(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    await creditd.charge("s1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])
    terminate = await creditd.charge("s1", TERMINATE, 1, ACCOUNT, [(DATA, 0, 5)])
    late = await creditd.charge("s1", UPDATE, 2, ACCOUNT, [(DATA, 0, 5)])
    assert late.result == pb.UNKNOWN_SESSION
    assert await creditd.charge("s1", TERMINATE, 1, ACCOUNT, [(DATA, 0, 5)]) == terminate


async def test_function_executed_twice_for_one_request_applies_once(creditd: Harness) -> None:
    """What redis-py does after a time-out: the same FCALL, same arguments, a second time."""
    await creditd.create_account(ACCOUNT, balance=1000)
    charging = creditd.server_charging()
    for request in (
        charge_request("s1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)]),
        charge_request("s1", UPDATE, 1, ACCOUNT, [(DATA, 0, 3_000_000)]),
    ):
        function, keys, args = charging.command(request)
        first = creditd.redis.fcall(function, len(keys), *keys, *args)
        second = creditd.redis.fcall(function, len(keys), *keys, *args)
        assert first[1] == b"" and second[1] == b"replayed" and first[2] == second[2]
    assert (await creditd.get(ACCOUNT)).balance == 970
    creditd.assert_audit_clean()


async def test_top_up_key_applies_once_and_refuses_another_payload(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=100)
    first = await creditd.top_up(ACCOUNT, 500, "pay-1")
    assert not first.replayed and first.account.balance == 600
    before = dump(creditd.redis)
    replay = await creditd.top_up(ACCOUNT, 500, "pay-1")
    assert replay.replayed and replay.ledger_seq == first.ledger_seq and replay.account.balance == 600
    assert dump(creditd.redis) == before
    for amount, channel in ((501, "bank"), (500, "voucher")):
        with pytest.raises(Exception) as refused:
            await creditd.top_up(ACCOUNT, amount, "pay-1", channel=channel)
        assert refused.value.code().name == "INVALID_ARGUMENT" and "idempotency_key" in refused.value.details()
    assert dump(creditd.redis) == before
    creditd.assert_audit_clean()


async def test_create_account_retry_returns_the_account_and_a_conflict_is_refused(creditd: Harness) -> None:
    first = await creditd.create_account(ACCOUNT, balance=100)
    again = await creditd.create_account(ACCOUNT, balance=100)
    assert again == first
    with pytest.raises(Exception) as refused:
        await creditd.create_account(ACCOUNT, balance=200)
    assert refused.value.code().name == "ALREADY_EXISTS"
    assert (await creditd.get(ACCOUNT)).balance == 100
