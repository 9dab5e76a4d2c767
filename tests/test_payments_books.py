"""The payments' books against the suite's real Redis: a payment through each channel (an agent's
pay and cancel, a bank statement credit, a PromptPay webhook) leaves a top-up whose ledger entry names
the channel and the external reference; `creditd payments audit` finds each applied payment with
exactly one top-up (exit 0), calls a top-up whose record is not written yet unfinished, and reports a
payment top-up without its payment and an applied payment without its top-up (exit 1); the front's
/metrics counts the payments by channel, the intents and the webhook outcomes; `creditd payments
revenue` sums what each channel brought in, cancellations deducted."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from creditd.config.settings import Settings
from creditd.payments.agents import Agents, Payment
from creditd.payments.money import Money
from creditd.store.connection import connect
from tests.harness import Harness
from tests.payments import (
    AGENT,
    STATEMENT_ACCOUNT,
    Entry,
    camt,
    config_file,
    create_intent,
    deliver,
    payment_settings,
    post_signed,
    rfc3339,
    run_cli,
    running_front,
)

pytestmark = pytest.mark.asyncio
ACCOUNT = STATEMENT_ACCOUNT


def _metric(text: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def _audit(creditd: Harness, tmp_path: Path) -> tuple[int, str]:
    return await run_cli(
        "payments", "audit", "--redis", creditd.server.redis_url, "--config", str(config_file(tmp_path))
    )


async def test_every_channel_names_itself_in_the_ledger_and_the_books_balance(
    creditd: Harness, settings: Settings, tmp_path: Path
) -> None:
    await creditd.create_account(ACCOUNT)
    own = payment_settings(settings)
    async with running_front(creditd, own) as url:
        async with httpx.AsyncClient(timeout=10) as client:
            before = (await client.get(url + "/metrics")).text
        now = rfc3339(creditd.clock.now_ms())
        for transaction_id in ("B-1", "B-2"):
            document = {"transaction_id": transaction_id, "account_id": ACCOUNT, "amount_minor": 1000, "time": now}
            assert (await post_signed(url, "/agent/v1/pay", document))[1]["result"] == 0
        cancelled = await post_signed(url, "/agent/v1/cancel", {"transaction_id": "B-2", "time": now})
        assert cancelled[1]["result"] == 0
        intent = (await create_intent(url, 3000, ACCOUNT)).json()
        async with httpx.AsyncClient(timeout=10) as client:
            document = {"transaction_id": "PP-9", "reference": intent["reference"], "amount_minor": 3000}
            assert (await deliver(client, url, document)).json()["outcome"] == "applied"
            assert (await deliver(client, url, document)).json()["outcome"] == "replayed"
            after = (await client.get(url + "/metrics")).text
    statement = tmp_path / "statement.xml"
    statement.write_bytes(camt([Entry("ST-1", "7.00")]))
    status, output = await run_cli(
        "payments",
        "import",
        str(statement),
        "--redis",
        creditd.server.redis_url,
        "--config",
        str(config_file(tmp_path)),
    )
    assert status == 0, output
    entries = [(entry.kind, entry.amount, entry.reference) for entry in reversed(await creditd.ledger(ACCOUNT))]
    payments = [entry for entry in entries if entry[0] in ("topup", "adjustment")]
    assert payments == [
        ("topup", 1000, "agent shop1:B-1"),
        ("topup", 1000, "agent shop1:B-2"),
        ("adjustment", -1000, "shop1:B-2:c cancel agent shop1 B-2"),
        ("topup", 3000, f"promptpay qr:{intent['reference']}"),
        ("topup", 700, "bank bank:ST-1"),
    ]
    status, output = await run_cli(
        "payments",
        "revenue",
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
        "--redis",
        creditd.server.redis_url,
        "--config",
        str(config_file(tmp_path)),
    )
    assert status == 0, output
    rows = [line.split() for line in output.splitlines()[1:4]]
    assert rows == [["agent", "2", "1", "1000"], ["promptpay", "1", "0", "3000"], ["bank", "1", "0", "700"]]
    assert "total 4700 THB" in output
    status, output = await _audit(creditd, tmp_path)
    assert status == 0 and "4 applied payments, 4 payment top-ups, 0 unfinished: 0 violation(s)" in output, output
    grew = {
        (name, labels): _metric(after, name, labels) - _metric(before, name, labels)
        for name, labels in (
            ("creditd_payments_applied_total", '{channel="agent"}'),
            ("creditd_payments_applied_amount_minor_total", '{channel="agent"}'),
            ("creditd_payments_applied_total", '{channel="promptpay"}'),
            ("creditd_payments_intents_created_total", ""),
            ("creditd_payments_webhooks_total", '{outcome="applied"}'),
            ("creditd_payments_webhooks_total", '{outcome="replayed"}'),
            ("creditd_payments_requests_total", '{operation="pay",outcome="ok"}'),
            ("creditd_payments_requests_total", '{operation="cancel",outcome="ok"}'),
        )
    }
    assert list(grew.values()) == [2, 2000, 1, 1, 1, 1, 2, 1]


async def test_the_audit_tells_unfinished_from_missing(creditd: Harness, settings: Settings, tmp_path: Path) -> None:
    await creditd.create_account(ACCOUNT)
    own = payment_settings(settings)
    client = connect(creditd.server.redis_url, own.redis)
    try:
        agents = Agents(Money(client, own.redis.partitions, creditd.clock), own.payments)
        now_ms = creditd.clock.now_ms()
        # cut off after its top-up: claimed, topped up, not recorded applied
        halfway = Payment(transaction_id="U-1", account_id=ACCOUNT, amount_minor=500, paid_at_ms=now_ms)
        await agents._step(AGENT, halfway, "claim", 100_000)
        await agents.money.top_up(ACCOUNT, 500, "agent", f"{AGENT}:U-1")
        status, output = await _audit(creditd, tmp_path)
        assert status == 0 and "UNFINISHED 'agent shop1:U-1'" in output, output
        # recorded applied, never topped up; and a top-up in the agent channel no payment explains
        lost = Payment(transaction_id="U-2", account_id=ACCOUNT, amount_minor=600, paid_at_ms=now_ms)
        await agents._step(AGENT, lost, "claim", 100_000)
        await agents._step(AGENT, lost, "applied", 100_000, ledger_seq=99)
        await creditd.top_up(ACCOUNT, 700, f"{AGENT}:U-3", channel="agent")
    finally:
        await client.aclose()
    status, output = await _audit(creditd, tmp_path)
    assert status == 1, output
    assert f"VIOLATION 'agent shop1:U-2': applied 600 to {ACCOUNT}, top-ups []" in output
    assert f"VIOLATION 'agent shop1:U-3': top-ups [('{ACCOUNT}', 700)] without a payment record" in output
