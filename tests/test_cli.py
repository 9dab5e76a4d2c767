"""The CLI a person tries creditd with, run as real subprocesses against a real server: account
create, charge (a whole session), topup (and its replay), status, plan (to a second plan the test
configures; an unknown plan and a malformed name are refused, changing nothing) and show print what
happened, and an error from the server comes back as a readable message with a non-zero exit."""

from __future__ import annotations

import asyncio
import sys

import pytest

from creditd.config.settings import Settings
from tests.harness import THAI_NUMBER, Harness, ServerAt
from tests.test_console_care import with_a_second_plan
from tests.test_rating import bangkok_ms

pytestmark = pytest.mark.asyncio
ACCOUNT = "66812345678"


async def cli(creditd: Harness, *arguments: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "creditd",
        *arguments,
        "--server",
        f"127.0.0.1:{creditd.server.port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, output.decode()


async def test_worked_example(creditd: Harness) -> None:
    code, created = await cli(creditd, "account", "create", ACCOUNT, "--balance", "1000", "--name", "Somchai")
    assert code == 0 and "balance      1000" in created and "ACTIVE" in created

    code, played = await cli(
        creditd,
        "charge",
        ACCOUNT,
        "--rating-group",
        "2",
        "--used",
        "90",
        "--updates",
        "2",
        "--called-party",
        THAI_NUMBER,
    )
    assert code == 0
    lines = played.splitlines()
    assert lines[0].startswith("INITIAL   #0: SUCCESS") and "granted 300 SECONDS" in lines[1]
    assert "charged 200" in lines[3] and "charged 100" in lines[5] and lines[6].startswith("TERMINATE #3: SUCCESS")
    # 3 x 90 s: 5 started minutes of the call's use (the second report's first 30 s were paid)
    assert (await creditd.get(ACCOUNT)).balance == 1000 - 500

    code, paid = await cli(creditd, "account", "topup", ACCOUNT, "500", "--key", "voucher-1", "--channel", "voucher")
    assert code == 0 and "applied" in paid and "balance      1000" in paid
    code, replayed = await cli(
        creditd, "account", "topup", ACCOUNT, "500", "--key", "voucher-1", "--channel", "voucher"
    )
    assert code == 0 and "REPLAYED" in replayed and "balance      1000" in replayed

    await creditd.top_up(ACCOUNT, 2_000, "bank-1")
    code, bought = await cli(creditd, "account", "buy", ACCOUNT, "sms_50", "--key", "b1")
    assert code == 0 and "balance      1100" in bought and "50 of 50 EVENTS left" in bought
    code, limited = await cli(creditd, "account", "credit-limit", ACCOUNT, "300")
    assert code == 0 and "limit 300 (operator override)   tier basic" in limited
    code, tiered = await cli(creditd, "account", "credit-limit", ACCOUNT, "--tier")
    assert code == 0 and "limit 0 (tier basic)" in tiered
    code, both = await cli(creditd, "account", "credit-limit", ACCOUNT, "300", "--tier")
    assert code == 2 and "AMOUNT or --tier" in both

    code, suspended = await cli(creditd, "account", "status", ACCOUNT, "ONE_WAY_SUSPENDED", "--reason", "FRAUD")
    assert code == 0 and "ONE_WAY_SUSPENDED (FRAUD)" in suspended

    code, shown = await cli(creditd, "account", "show", ACCOUNT)
    assert code == 0 and "topup" in shown and "voucher voucher-1" in shown and shown.count("charge") == 3
    assert "contact      Somchai" in shown and "billing      cycle day" in shown and "credit_limit" in shown


async def test_account_plan_moves_the_account_or_refuses_naming_the_plan(
    server_at: ServerAt, settings: Settings
) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00"), loaded=with_a_second_plan(settings)) as creditd:
        await creditd.create_account(ACCOUNT, balance=1000)
        code, moved = await cli(creditd, "account", "plan", ACCOUNT, "standard_2027")
        assert code == 0 and "plan standard_2027" in moved, moved
        assert (await creditd.get(ACCOUNT)).plan == "standard_2027"
        code, unknown = await cli(creditd, "account", "plan", ACCOUNT, "no_such_plan")
        assert code == 1 and "plan: no such plan" in unknown, unknown
        code, malformed = await cli(creditd, "account", "plan", ACCOUNT, "a b")
        assert code == 2 and "plan" in malformed, malformed
        assert (await creditd.get(ACCOUNT)).plan == "standard_2027"


async def test_server_errors_are_readable(creditd: Harness) -> None:
    code, output = await cli(creditd, "account", "show", "66800000404")
    assert code == 1 and "NOT_FOUND: account_id: unknown account" in output


async def test_events_tail_prints_the_feed_from_a_position(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1000)
    await creditd.top_up(ACCOUNT, 250, "t-1", channel="voucher")
    code, output = await cli(creditd, "events", "tail", "--from", "0-0-0", "--count", "2")
    lines = output.splitlines()
    assert code == 0 and len(lines) == 2
    assert "account_created" in lines[0] and ACCOUNT in lines[0] and "detail=standard" in lines[0]
    assert "topup" in lines[1] and "detail=250 voucher" in lines[1]
