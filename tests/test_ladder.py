"""The suspension ladder's time-driven steps, with the clock moved (never slept on): one-way in
debt for the plan's one-way grace period becomes two-way with the late fee charged, two-way for the
two-way grace period becomes terminated and blacklisted; applied lazily by the next request and by
the sweeper; a top-up that pays debt and fee resumes a credit-caused two-way suspension; operator
suspensions do not move by themselves; suspension_coming reminders 3 days and 1 day before a step
(one for a long silence, none once paid), and the card shows the next step. Sample plan: 7 days,
30 days, late fee 2 000."""

from __future__ import annotations

import grpc
import pytest

from creditd.v1 import creditd_pb2 as pb
from tests.harness import EVENT, INITIAL, SMS, VOICE_IN, Harness

pytestmark = pytest.mark.asyncio
ACCOUNT = "66819190000"
DAY_S = 86400
LATE_FEE = 2000


async def exhaust(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=50)
    answer = await creditd.charge("sms-0", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])
    assert answer.account_status == pb.ONE_WAY_SUSPENDED


async def test_one_way_becomes_two_way_with_the_late_fee_on_the_next_request(creditd: Harness) -> None:
    await exhaust(creditd)
    await creditd.charge("in-1", INITIAL, 0, ACCOUNT, [(VOICE_IN, 0, 0)], gateway_id="ims1")
    creditd.clock.advance(7 * DAY_S - 1)
    assert (await creditd.charge("in-2", INITIAL, 0, ACCOUNT, [(VOICE_IN, 0, 0)])).result == pb.SUCCESS
    creditd.clock.advance(2)
    late = await creditd.charge("in-3", INITIAL, 0, ACCOUNT, [(VOICE_IN, 0, 0)])
    assert (late.result, late.account_status) == (pb.END_USER_SERVICE_DENIED, pb.TWO_WAY_SUSPENDED)
    card = await creditd.get(ACCOUNT)
    assert (card.balance, card.status_reason) == (-LATE_FEE, "CREDIT")
    entries = await creditd.ledger(ACCOUNT, limit=2)
    assert [(entry.kind, entry.amount) for entry in entries] == [("fee", -LATE_FEE), ("status", 0)]
    kinds = [fields[b"kind"] for _, fields in creditd.redis.xrange(creditd.server_keys().events(ACCOUNT))]
    assert b"suspended_two_way" in kinds and b"ABORT_SESSION" in kinds


async def test_the_sweeper_applies_the_steps_without_a_request_and_terminates(creditd: Harness) -> None:
    await exhaust(creditd)
    sweeper = creditd.server.sweeper
    creditd.clock.advance(7 * DAY_S + 1)
    assert (await sweeper.sweep_once()).due_accounts == 1
    assert (await creditd.get(ACCOUNT)).status == pb.TWO_WAY_SUSPENDED
    creditd.clock.advance(30 * DAY_S - 10)
    await sweeper.sweep_once()
    assert (await creditd.get(ACCOUNT)).status == pb.TWO_WAY_SUSPENDED
    creditd.clock.advance(20)
    await sweeper.sweep_once()
    card = await creditd.get(ACCOUNT)
    assert (card.status, card.status_reason) == (pb.TERMINATED, "CREDIT")
    assert creditd.redis.sismember(creditd.server_keys().blacklist(ACCOUNT), ACCOUNT)
    assert (await sweeper.sweep_once()).due_accounts == 0  # off the index: nothing more to do
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await creditd.top_up(ACCOUNT, 10_000, "too-late")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_long_silence_crosses_both_steps_at_once(creditd: Harness) -> None:
    await exhaust(creditd)
    creditd.clock.advance(40 * DAY_S)
    answer = await creditd.charge("late", INITIAL, 0, ACCOUNT, [(VOICE_IN, 0, 0)])
    assert answer.account_status == pb.TERMINATED
    kinds = [entry.kind for entry in await creditd.ledger(ACCOUNT)]
    assert kinds[:3] == ["status", "fee", "status"]  # terminated, late fee, two-way


async def test_paying_debt_and_fee_resumes_a_two_way_suspension(creditd: Harness) -> None:
    await exhaust(creditd)
    creditd.clock.advance(8 * DAY_S)
    await creditd.server.sweeper.sweep_once()
    short = await creditd.top_up(ACCOUNT, LATE_FEE, "pay-1")
    assert short.account.status == pb.TWO_WAY_SUSPENDED  # back to zero: not yet positive
    paid = await creditd.top_up(ACCOUNT, 1, "pay-2")
    assert (paid.account.status, paid.account.status_reason) == (pb.ACTIVE, "TOPUP")
    creditd.clock.advance(60 * DAY_S)
    assert (await creditd.server.sweeper.sweep_once()).due_accounts == 0


async def test_operator_suspension_waits_for_the_operator(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    await creditd.accounts.SetStatus(
        pb.SetStatusRequest(account_id=ACCOUNT, status=pb.ONE_WAY_SUSPENDED, reason="FRAUD")
    )
    creditd.clock.advance(100 * DAY_S)
    await creditd.server.sweeper.sweep_once()
    assert (await creditd.get(ACCOUNT)).status == pb.ONE_WAY_SUSPENDED


async def test_a_terminated_id_is_blacklisted_for_new_accounts(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    await creditd.accounts.SetStatus(pb.SetStatusRequest(account_id=ACCOUNT, status=pb.TERMINATED, reason="ADMIN"))
    keys = creditd.server_keys()
    for key in (keys.account(ACCOUNT), keys.ledger(ACCOUNT)):  # as if the account had been archived
        creditd.redis.delete(key)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await creditd.create_account(ACCOUNT, balance=1000)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "blacklisted" in refused.value.details()


async def test_reminders_announce_the_next_step_and_the_card_shows_it(creditd: Harness) -> None:
    await exhaust(creditd)
    since_ms = (await creditd.get(ACCOUNT)).status_since_ms
    two_way_at_ms = since_ms + 7 * DAY_S * 1000
    card = await creditd.get(ACCOUNT)
    assert (card.next_status, card.next_status_at_ms) == (pb.TWO_WAY_SUSPENDED, two_way_at_ms)
    sweeper = creditd.server.sweeper

    def reminders() -> list[str]:
        return [detail for kind, detail in creditd.events_of(ACCOUNT) if kind == "suspension_coming"]

    creditd.clock.advance(4 * DAY_S - 10)  # 3 days + 10 s before the step
    await sweeper.sweep_once()
    assert reminders() == []
    creditd.clock.advance(20)
    await sweeper.sweep_once()
    assert reminders() == [f"TWO_WAY_SUSPENDED {two_way_at_ms} 3"]
    await sweeper.sweep_once()
    assert len(reminders()) == 1  # once
    creditd.clock.advance(2 * DAY_S)
    await creditd.charge("in-1", INITIAL, 0, ACCOUNT, [(VOICE_IN, 0, 0)])  # lazily, by a request
    assert reminders()[-1] == f"TWO_WAY_SUSPENDED {two_way_at_ms} 1"
    creditd.clock.advance(DAY_S)
    await sweeper.sweep_once()
    card = await creditd.get(ACCOUNT)
    assert card.status == pb.TWO_WAY_SUSPENDED and card.next_status == pb.TERMINATED
    # A long silence: one reminder for the latest that fell due (1 day before termination), not two.
    creditd.clock.advance(29 * DAY_S + 10)
    await sweeper.sweep_once()
    assert reminders()[2:] == [f"TERMINATED {card.next_status_at_ms} 1"]


async def test_no_reminder_once_the_debt_is_paid(creditd: Harness) -> None:
    await exhaust(creditd)
    await creditd.top_up(ACCOUNT, 1_000, "pay")
    creditd.clock.advance(6 * DAY_S + 1)
    await creditd.server.sweeper.sweep_once()
    assert "suspension_coming" not in [kind for kind, _ in creditd.events_of(ACCOUNT)]
    assert (await creditd.get(ACCOUNT)).next_status == pb.ACCOUNT_STATUS_UNSPECIFIED
