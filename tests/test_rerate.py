"""`creditd rerate` and the attribution reports against a real Redis, through the real command line.

Rerate: calls and SMS charged at the sample prices, then the voice tariff is lowered in a config
file: a dry run prints the differences and writes nothing (DUMP unchanged); the real run moves each
balance by exactly the difference, with one `adjustment` ledger entry per account; a second run
posts nothing. Reports: debt by dealer and by provider (a streaming provider whose usage ran an
account into debt) both sum to the total arrears; a provider's settlement is its revenue less its
share of the arrears."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from creditd.store.embedded import EmbeddedRedis
from creditd.v1 import creditd_pb2 as pb
from tests.harness import EVENT, INITIAL, SMS, TERMINATE, VOICE, Harness, ServerAt, dump
from tests.test_rating import bangkok_ms
from tests.test_rating_config import SHIPPED

pytestmark = pytest.mark.asyncio
ACCOUNTS = ("66819190001", "66819190002")


async def creditd_command(*arguments: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "creditd", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    output, errors = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, output.decode(), errors.decode()


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


async def call(creditd: Harness, account_id: str, session_id: str, used_s: int) -> None:
    await creditd.charge(session_id, INITIAL, 0, account_id, [(VOICE, 0, 0)])
    await creditd.charge(session_id, TERMINATE, 1, account_id, [(VOICE, 0, used_s)])


async def test_rerate_moves_balances_by_the_difference_once(
    creditd: Harness, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    started_ms = creditd.clock.now_ms()
    for account_id in ACCOUNTS:
        await creditd.create_account(account_id, balance=10_000)
    await call(creditd, ACCOUNTS[0], "c1", 120)  # 2 blocks at 100
    await call(creditd, ACCOUNTS[0], "c2", 61)  # 2 blocks at 100
    await call(creditd, ACCOUNTS[1], "c3", 300)  # 5 blocks at 100
    await creditd.charge("s1", EVENT, 0, ACCOUNTS[1], [(SMS, 0, 0)])  # 50, unchanged by the new tariff
    await asyncio.sleep(0.1)
    balances = {account_id: (await creditd.get(account_id)).balance for account_id in ACCOUNTS}
    assert balances == {ACCOUNTS[0]: 9_600, ACCOUNTS[1]: 9_450}

    cheaper = tmp_path / "creditd.toml"
    cheaper.write_text(SHIPPED.replace("price_minor = 100\n", "price_minor = 80\n", 1))
    window = ["--from", iso(started_ms - 60_000), "--to", iso(creditd.clock.now_ms() + 60_000)]
    common = ["--redis", redis_server.url, "--config", str(cheaper)]

    before = dump(creditd.redis)
    code, output, errors = await creditd_command("rerate", *common, *window, "--dry-run")
    assert code == 0, errors
    assert f"{ACCOUNTS[0]:18} {2:8} {400:10} {320:10} {80:11}  dry run" in output
    assert f"{ACCOUNTS[1]:18} {2:8} {550:10} {450:10} {100:11}  dry run" in output
    assert dump(creditd.redis) == before

    code, output, errors = await creditd_command("rerate", *common, *window)
    assert code == 0, errors
    assert output.count("  yes") == 2 and "adjustments total 180" in output
    after = {account_id: (await creditd.get(account_id)).balance for account_id in ACCOUNTS}
    assert after == {ACCOUNTS[0]: 9_600 + 80, ACCOUNTS[1]: 9_450 + 100}
    entry = (await creditd.ledger(ACCOUNTS[0]))[0]
    assert entry.kind == "adjustment" and entry.amount == 80 and entry.reference.split(" ", 1)[1].startswith("rerate ")
    assert entry.actor == "cli:rerate"

    code, output, errors = await creditd_command("rerate", *common, *window)
    assert code == 0 and output.count("  replayed") == 2, output + errors
    assert {account_id: (await creditd.get(account_id)).balance for account_id in ACCOUNTS} == after

    code, output, errors = await creditd_command("rerate", *common, "--from", "soon", "--to", "later")
    assert code == 2 and "--from: an ISO 8601 date or time" in errors


STREAMING = (
    SHIPPED
    + """
[[plans.standard.tariffs]]
rating_group = 7
name = "video"
provider = "streamco"
unit = "SECONDS"
price_minor = 100
block_size = 60
default_grant = 60
validity_time_s = 600
"""
)


async def test_arrears_by_dealer_and_provider_sum_to_the_total(
    server_at: ServerAt, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    config = tmp_path / "creditd.toml"
    config.write_text(STREAMING)
    now_ms = bangkok_ms("2027-03-10T12:00:00")
    async with server_at(now_ms, STREAMING) as creditd:
        dealers = {"66819190011": "shop-1", "66819190012": "shop-1", "66819190013": "online", "66819190014": ""}
        for n, (account_id, dealer) in enumerate(dealers.items()):
            await creditd.create_account(account_id, balance=1_000, dealer=dealer)
            await creditd.charge(f"e{n}", EVENT, 0, account_id, [(SMS, 0, 0)])  # 50, still in credit
            rating_group = 7 if n % 2 == 0 else VOICE
            await creditd.charge(f"v{n}", INITIAL, 0, account_id, [(rating_group, 0, 0)])
            await creditd.charge(f"v{n}", TERMINATE, 1, account_id, [(rating_group, 0, 600 * (n + 1))])
        await asyncio.sleep(0.1)
        debts = {account_id: -(await creditd.get(account_id)).balance for account_id in dealers}
        assert debts == {"66819190011": 50, "66819190012": 1_050, "66819190013": 2_050, "66819190014": 3_050}
        total = sum(debts.values())

        common = ["--redis", redis_server.url, "--config", str(config), "--json"]
        code, output, errors = await creditd_command("report", "arrears", "--by", "dealer", *common)
        assert code == 0, errors
        assert json.loads(output) == {"shop-1": 1_100, "": 3_050, "online": 2_050}
        code, output, errors = await creditd_command("report", "arrears", "--by", "provider", *common)
        by_provider = json.loads(output)
        assert code == 0 and sum(by_provider.values()) == total, errors
        # the streaming accounts' debt goes to streamco in proportion to its share of their charges
        # since they were last in credit: 66819190011 (1 000 of 1 050) and 66819190013 (3 000 of 3 050)
        # (50 x 1 000 / 1 050 = 47.6 -> 48 by the larger remainder; 2 050 x 3 000 / 3 050 = 2 016.4)
        assert by_provider == {"": 2 + 1_050 + 34 + 3_050, "streamco": 48 + 2_016}

        window = ["--from", iso(now_ms - 60_000), "--to", iso(now_ms + 60_000)]
        code, output, errors = await creditd_command("report", "settlement", "--provider", "streamco", *window, *common)
        assert code == 0, errors
        document = json.loads(output)
        assert document["provider"] == {"provider": "streamco", "revenue": 4_000, "arrears": 2_064, "net": 1_936}
        assert document["received_minor"] == 0 and [row["channel"] for row in document["channels"]] == [
            "agent",
            "promptpay",
            "bank",
        ]
        assert (await creditd.get("66819190011")).status != pb.ACTIVE
