"""Emergency credit (Accounts.Borrow, lua/functions/borrow.lua, the recovery in top_up.lua) against a
real server with the sample plan's offers (emergency_10: 10.00 now, 1.00 fee, one at a time;
emergency_50: silver and gold tiers only): a barred line borrows and is active again; a replay lends
nothing; a second loan above the offer's maximum, an offer the tier may not have, an unknown offer
and an account suspended both ways are refused and change nothing; a top-up smaller than what is
owed pays part of it (the rest stays owed), the next one the rest, and raises no low-balance
notice (the balance never ends below where the top-up found it); every step shows in the ledger,
and the auditor, run after the test, finds the money conserved. `creditd report loans` lists who
owes and the total."""

from __future__ import annotations

import asyncio
import sys

import grpc
import pytest

from creditd.v1 import creditd_pb2 as pb
from tests.harness import EVENT, SMS, Harness, charge_request, dump

pytestmark = pytest.mark.asyncio
ACCOUNT = "66815150001"


async def borrow(creditd: Harness, offer_id: str, key: str) -> pb.TopUpAnswer:
    return await creditd.accounts.Borrow(pb.BorrowRequest(account_id=ACCOUNT, offer_id=offer_id, idempotency_key=key))


async def refusal(creditd: Harness, offer_id: str, key: str) -> tuple[grpc.StatusCode, str]:
    before = dump(creditd.redis)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await borrow(creditd, offer_id, key)
    assert dump(creditd.redis) == before
    return error.value.code(), error.value.details() or ""


async def test_a_loan_lifts_a_barred_line_and_top_ups_pay_it_back(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=100)
    for n in range(2):  # two SMS at 50: barred for outgoing calls
        await creditd.credit_control.Charge(charge_request(f"sms{n}", EVENT, 0, ACCOUNT, [(SMS, 0, 0)]))
    assert (await creditd.get(ACCOUNT)).status == pb.ONE_WAY_SUSPENDED

    lent = await borrow(creditd, "emergency_10", "loan-1")
    assert (lent.account.balance, lent.account.loan_outstanding, lent.account.status) == (1_000, 1_100, pb.ACTIVE)
    replay = await borrow(creditd, "emergency_10", "loan-1")
    assert replay.replayed and replay.ledger_seq == lent.ledger_seq and replay.account.balance == 1_000

    assert await refusal(creditd, "emergency_10", "loan-2") == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "offer_id: would owe 2200, above the offer's 1100",
    )
    assert await refusal(creditd, "emergency_50", "loan-3") == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "offer_id: not offered to tier basic",
    )
    code, message = await refusal(creditd, "payday", "loan-4")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("offer_id: the plan standard has no")

    part = await creditd.top_up(ACCOUNT, 500, "t1")  # pays 500 of the 1 100 owed
    assert (part.account.balance, part.account.loan_outstanding) == (1_000, 600)
    rest = await creditd.top_up(ACCOUNT, 1_000, "t2")  # pays the other 600
    assert (rest.account.balance, rest.account.loan_outstanding) == (1_400, 0)
    kinds = [(entry.kind, entry.amount) for entry in reversed(await creditd.ledger(ACCOUNT))]
    assert kinds[-6:] == [
        ("loan", 1_000),
        ("status", 0),  # resumed by the loan
        ("topup", 500),
        ("loan_recovery", -500),
        ("topup", 1_000),
        ("loan_recovery", -600),
    ]
    again = await creditd.top_up(ACCOUNT, 300, "t3")  # nothing owed: all of it stays
    assert (again.account.balance, again.account.loan_outstanding) == (1_700, 0)
    events = [entry.kind for entry in reversed(await creditd.ledger(ACCOUNT))]
    assert events.count("loan_recovery") == 2


async def test_an_account_suspended_both_ways_cannot_borrow(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=0)
    await creditd.accounts.SetStatus(
        pb.SetStatusRequest(account_id=ACCOUNT, status=pb.TWO_WAY_SUSPENDED, reason="ADMIN")
    )
    assert await refusal(creditd, "emergency_10", "loan-1") == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "account_id: an account suspended both ways cannot borrow",
    )
    for bad, field in (
        (pb.BorrowRequest(account_id=ACCOUNT, offer_id="a b", idempotency_key="k"), "offer_id"),
        (pb.BorrowRequest(account_id=ACCOUNT, offer_id="emergency_10"), "idempotency_key"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await creditd.accounts.Borrow(bad)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (error.value.details() or "").startswith(field + ":")


async def test_the_loans_report_lists_who_owes(creditd: Harness, redis_server: object) -> None:
    await creditd.create_account(ACCOUNT, balance=0)
    await creditd.create_account("66815150002", balance=5_000)
    await borrow(creditd, "emergency_10", "loan-1")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "creditd",
        "report",
        "loans",
        "--redis",
        redis_server.url,  # type: ignore[attr-defined]
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    lines = output.decode().splitlines()
    assert process.returncode == 0 and lines[-1] == "1 account(s) owe 1100 in all"
    assert lines[1].split() == [ACCOUNT, "ACTIVE", "basic", "1000", "1100"]


async def test_a_recovered_loan_raises_no_low_balance_notice(creditd: Harness) -> None:
    """A top-up that pays a loan back never leaves the balance below where it was, so no low-balance
    threshold was crossed: 1 000 + 1 500 topped up - 1 100 recovered = 1 400 is below the 2 000
    threshold, but from above 1 000, not from above 2 000."""
    await creditd.create_account(ACCOUNT, balance=0)
    await borrow(creditd, "emergency_10", "loan-1")
    before = len(creditd.events_of(ACCOUNT))
    paid = await creditd.top_up(ACCOUNT, 1_500, "t1")
    assert (paid.account.balance, paid.account.loan_outstanding) == (1_400, 0)
    kinds = [kind for kind, _ in creditd.events_of(ACCOUNT)[before:]]
    assert kinds == ["topup", "loan_recovered"]
