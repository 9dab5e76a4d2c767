"""Credit tiers: recompute_tier puts an account in the tier its average monthly top-up (over the
plan's credit_tier_months × 30 days) earns, and its credit limit follows unless an operator set
one; SetCreditLimit overrides and clears; a lower limit can suspend an account in debt and a
higher one resume it; `creditd tiers recompute` does every account in batches with a progress bar,
and `creditd report arrears` lists who is in debt or suspended. Sample plan tiers: basic (0),
silver (300 THB a month → 50 THB credit), gold (1 000 THB → 200 THB); window 3 × 30 days."""

from __future__ import annotations

import grpc
import pytest
from msgspec import json

from creditd.core import jobs
from creditd.store.calls import Calls
from creditd.v1 import creditd_pb2 as pb
from tests.harness import EVENT, SMS, Harness
from tests.test_audit_cli import creditd_command

pytestmark = pytest.mark.asyncio
DAY_S = 86400
SILVER, GOLD = 5_000, 20_000


def recompute(creditd: Harness, batch_size: int = 2) -> jobs.TierSummary:
    calls = Calls(creditd.settings.redis.partitions)
    return jobs.recompute_tiers(creditd.redis, calls, creditd.clock.now_ms(), "test", batch_size)


async def test_tiers_follow_recent_top_ups_and_old_ones_age_out(creditd: Harness) -> None:
    for account_id, monthly in (("66823230001", 0), ("66823230002", 30_000), ("66823230003", 100_000)):
        card = await creditd.create_account(account_id)
        assert (card.tier, card.credit_limit, card.credit_limit_override) == ("basic", 0, False)
        for month in range(3):
            if monthly:
                await creditd.top_up(account_id, monthly, f"m{month}")
            creditd.clock.advance(-0.001)  # keep every top-up inside the window below
    summary = recompute(creditd)
    assert (summary.accounts, summary.changed, summary.failed) == (3, 2, 0)
    assert summary.by_tier == {"basic": 1, "gold": 1, "silver": 1}
    cards = {a: await creditd.get(a) for a in ("66823230001", "66823230002", "66823230003")}
    assert [(c.tier, c.credit_limit) for c in cards.values()] == [("basic", 0), ("silver", SILVER), ("gold", GOLD)]
    entry = (await creditd.ledger("66823230003", limit=1))[0]
    assert (entry.kind, entry.amount, entry.reference) == ("credit_limit", 0, "0 -> 20000 tier gold")
    assert recompute(creditd).changed == 0  # a rerun changes nothing
    creditd.clock.advance(91 * DAY_S)  # every top-up is now older than the window
    assert recompute(creditd).by_tier == {"basic": 3}
    assert (await creditd.get("66823230003")).credit_limit == 0


async def test_an_operator_limit_wins_until_cleared(creditd: Harness) -> None:
    account_id = "66823230010"
    await creditd.create_account(account_id)
    await creditd.top_up(account_id, 3 * 100_000, "big")
    card = await creditd.accounts.SetCreditLimit(pb.SetCreditLimitRequest(account_id=account_id, credit_limit=777))
    assert (card.credit_limit, card.credit_limit_override) == (777, True)
    recompute(creditd)
    card = await creditd.get(account_id)
    assert (card.tier, card.credit_limit, card.credit_limit_override) == ("gold", 777, True)
    card = await creditd.accounts.SetCreditLimit(pb.SetCreditLimitRequest(account_id=account_id))
    assert (card.credit_limit, card.credit_limit_override) == (GOLD, False)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await creditd.accounts.SetCreditLimit(pb.SetCreditLimitRequest(account_id=account_id, credit_limit=-1))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and refused.value.details().startswith(
        "credit_limit"
    )


async def test_credit_limit_changes_suspend_and_resume(creditd: Harness) -> None:
    account_id = "66823230020"
    await creditd.create_account(account_id, balance=40, credit_limit=100)
    for n in range(2):
        await creditd.charge(f"sms-{n}", EVENT, 0, account_id, [(SMS, 0, 0)])
    card = await creditd.get(account_id)
    assert (card.balance, card.status) == (-60, pb.ACTIVE)  # within the credit limit
    lowered = await creditd.accounts.SetCreditLimit(pb.SetCreditLimitRequest(account_id=account_id, credit_limit=50))
    assert (lowered.status, lowered.status_reason) == (pb.ONE_WAY_SUSPENDED, "CREDIT")
    raised = await creditd.accounts.SetCreditLimit(pb.SetCreditLimitRequest(account_id=account_id, credit_limit=500))
    assert (raised.status, raised.status_reason) == (pb.ACTIVE, "CREDIT_LIMIT")


async def test_tiers_recompute_and_report_arrears_commands(creditd: Harness, redis_server) -> None:
    await creditd.create_account("66823230030", balance=1_000)
    await creditd.top_up("66823230030", 300_000, "t1")
    await creditd.create_account("66823230031", balance=50)
    await creditd.charge("sms-0", EVENT, 0, "66823230031", [(SMS, 0, 0)])
    code, output = await creditd_command("tiers", "recompute", "--redis", redis_server.url, "--batch-size", "1")
    assert code == 0, output
    assert "2 accounts, 1 changed, 0 failed; by tier: basic 1, gold 1" in output and "recomputing tiers" in output
    assert (await creditd.get("66823230030")).credit_limit == GOLD

    code, output = await creditd_command("report", "arrears", "--redis", redis_server.url)
    assert code == 0 and "66823230031" in output and "66823230030" not in output, output
    assert "ONE_WAY_SUSPENDED" in output and "TWO_WAY_SUSPENDED at" in output
    code, output = await creditd_command("report", "arrears", "--redis", redis_server.url, "--json")
    (row,) = json.decode(output.splitlines()[0])  # stdout first; the progress bar went to stderr
    card = await creditd.get("66823230031")
    assert (row["account_id"], row["debt"], row["status"], row["next_status"]) == (
        "66823230031",
        0,
        pb.ONE_WAY_SUSPENDED,
        pb.TWO_WAY_SUSPENDED,
    )
    assert row["next_status_at_ms"] == card.status_since_ms + 7 * DAY_S * 1000
