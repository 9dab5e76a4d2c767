"""`creditd payments reconcile` against the suite's real Redis: payments made through the payments
front over HTTP, a registry CSV written here, the command run through click with --redis and a
config of the test's own. One test per outcome, each checking the report (table and CSV), the exit
status, the money, and that a second run leaves every key as it was (DUMP); a bad registry line is
an error naming the line, and nothing is applied."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from creditd.config.settings import Settings
from tests.harness import Harness, dump
from tests.payments import (
    AGENT,
    config_file,
    payment_settings,
    post_signed,
    rfc3339,
    run_cli,
    running_front,
    top_ups,
)

pytestmark = pytest.mark.asyncio
ACCOUNT = "66822220001"
HEADER = "transaction_id,account_id,amount_minor,time\n"


async def _pay(creditd: Harness, settings: Settings, payments: list[tuple[str, int]]) -> str:
    """Pays each (transaction id, amount) through the front; the time they were paid at."""
    time = rfc3339(creditd.clock.now_ms())
    async with running_front(creditd, payment_settings(settings)) as url:
        for transaction_id, amount in payments:
            document = {"transaction_id": transaction_id, "account_id": ACCOUNT, "amount_minor": amount, "time": time}
            assert (await post_signed(url, "/agent/v1/pay", document))[1]["result"] == 0
    return time


def _day(creditd: Harness) -> str:
    return datetime.fromtimestamp(creditd.clock.now_ms() / 1000, ZoneInfo("Asia/Bangkok")).date().isoformat()


async def _reconcile(creditd: Harness, tmp_path: Path, lines: list[str]) -> tuple[int, str, str]:
    registry = tmp_path / "registry.csv"
    registry.write_text(HEADER + "".join(line + "\n" for line in lines))
    report = tmp_path / "report.csv"
    status, output = await run_cli(
        "payments",
        "reconcile",
        "--agent",
        AGENT,
        "--date",
        _day(creditd),
        "--registry",
        str(registry),
        "--csv",
        str(report),
        "--redis",
        creditd.server.redis_url,
        "--config",
        str(config_file(tmp_path)),
    )
    return status, output, report.read_text() if report.exists() else ""


async def test_matched_payments_exit_0_and_change_nothing(creditd: Harness, settings: Settings, tmp_path: Path) -> None:
    await creditd.create_account(ACCOUNT)
    time = await _pay(creditd, settings, [("m-1", 1000), ("m-2", 2000)])
    before = dump(creditd.redis)
    status, output, report = await _reconcile(
        creditd, tmp_path, [f"m-1,{ACCOUNT},1000,{time}", f"m-2,{ACCOUNT},2000,{time}"]
    )
    assert status == 0, output
    assert "2 matched, 0 missing_ours, 0 missing_theirs, 0 mismatch" in output
    assert report.splitlines()[1] == f"m-1,matched,{ACCOUNT},1000,{ACCOUNT},1000,applied,"
    assert dump(creditd.redis) == before


async def test_missing_on_our_side_is_applied_once_and_a_second_run_changes_nothing(
    creditd: Harness, settings: Settings, tmp_path: Path
) -> None:
    """The registry proves a payment the agent's pay never delivered: applied now (above the
    agent's daily limit of 100 000 too); the second run finds it matched."""
    await creditd.create_account(ACCOUNT)
    time = await _pay(creditd, settings, [("o-1", 1000)])
    lines = [f"o-1,{ACCOUNT},1000,{time}", f"o-2,{ACCOUNT},40000,{time}", f"o-3,{ACCOUNT},70000,{time}"]
    status, output, report = await _reconcile(creditd, tmp_path, lines)
    assert status == 4, output
    assert f"o-2,missing_ours,{ACCOUNT},40000,{ACCOUNT},40000,applied,applied now" in report.splitlines()
    assert "1 matched, 2 missing_ours, 0 missing_theirs, 0 mismatch" in output
    before = dump(creditd.redis)
    status, output, _ = await _reconcile(creditd, tmp_path, lines)
    assert (status, "3 matched, 0 missing_ours" in output) == (0, True), output
    assert dump(creditd.redis) == before
    assert [amount for amount, _ in await top_ups(creditd, ACCOUNT)] == [1000, 40000, 70000]
    assert (await creditd.get(ACCOUNT)).balance == 111_000


async def test_missing_on_their_side_is_reported_and_not_touched(
    creditd: Harness, settings: Settings, tmp_path: Path
) -> None:
    await creditd.create_account(ACCOUNT)
    time = await _pay(creditd, settings, [("t-1", 1000), ("t-2", 3000)])
    before = dump(creditd.redis)
    for _ in range(2):
        status, output, report = await _reconcile(creditd, tmp_path, [f"t-1,{ACCOUNT},1000,{time}"])
        assert status == 8, output
        assert f"t-2,missing_theirs,,,{ACCOUNT},3000,applied," in report.splitlines()
        assert dump(creditd.redis) == before


async def test_an_amount_mismatch_is_reported_and_nothing_applied(
    creditd: Harness, settings: Settings, tmp_path: Path
) -> None:
    await creditd.create_account(ACCOUNT)
    time = await _pay(creditd, settings, [("a-1", 5000)])
    before = dump(creditd.redis)
    status, output, report = await _reconcile(creditd, tmp_path, [f"a-1,{ACCOUNT},6000,{time}"])
    assert status == 16, output
    assert f"a-1,mismatch,{ACCOUNT},6000,{ACCOUNT},5000,applied," in report.splitlines()
    assert dump(creditd.redis) == before
    # every outcome at once: the bits add up
    lines = [f"a-1,{ACCOUNT},6000,{time}", f"a-2,{ACCOUNT},100,{time}"]
    status, output, _ = await _reconcile(creditd, tmp_path, lines)
    assert status == 16 | 4, output


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("b-1,{account},12x,{time}", "line 3: amount_minor:"),
        ("b-1,a b,100,{time}", "line 3: account_id:"),
        ("b/1,{account},100,{time}", "line 3: transaction_id:"),
        ("b-1,{account},100,tomorrow", "line 3: time:"),
        ("b-1,{account},100,2020-01-01T10:00:00+07:00", "line 3: time: not on"),
        ("b-1,{account},100", "line 3: 4 fields expected"),
        ("ok-1,{account},100,{time}", "line 3: transaction_id: listed twice"),
    ],
)
async def test_a_bad_registry_line_is_named_and_nothing_is_applied(
    creditd: Harness, settings: Settings, tmp_path: Path, line: str, named: str
) -> None:
    await creditd.create_account(ACCOUNT)
    time = rfc3339(creditd.clock.now_ms())
    before = dump(creditd.redis)
    good = f"ok-1,{ACCOUNT},100,{time}"
    status, output, _ = await _reconcile(creditd, tmp_path, [good, line.format(account=ACCOUNT, time=time)])
    assert status == 1 and named in output, output
    assert dump(creditd.redis) == before
