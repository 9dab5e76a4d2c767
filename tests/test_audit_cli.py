"""`creditd audit` walks every account of a real Redis and prints each violation of the invariants,
exiting non-zero when there is any: clean after a scenario, and it reports a deliberately corrupted
account (balance off its ledger, reserved off its sessions, an ACTIVE account in debt).
`creditd check-config` validates a config offline and names the bad field."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from creditd.resources import default_config_path
from tests.harness import INITIAL, VOICE, Harness

pytestmark = pytest.mark.asyncio


async def creditd_command(*arguments: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "creditd", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    output, errors = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode() + errors.decode()


@pytest.mark.corrupts_data
async def test_audit_is_clean_then_reports_a_corrupted_account(creditd: Harness, redis_server) -> None:  # type: ignore[no-untyped-def]
    for n in range(5):
        await creditd.create_account(f"6681414000{n}", balance=1000)
        await creditd.charge(f"s{n}", INITIAL, 0, f"6681414000{n}", [(VOICE, 0, 0)])
    code, output = await creditd_command("audit", "--redis", redis_server.url)
    assert code == 0 and "5 accounts, 5 open sessions" in output and "0 violation(s)" in output

    keys = creditd.server_keys()
    creditd.redis.hset(keys.account("66814140001"), "balance", "999")
    creditd.redis.hset(keys.account("66814140002"), "reserved", "7")
    creditd.redis.hset(keys.account("66814140003"), mapping={"balance": "-5", "initial_balance": "1000"})
    code, output = await creditd_command("audit", "--redis", redis_server.url)
    assert code == 1
    assert "VIOLATION account 66814140001: balance 999 but the ledger sums to 1000" in output
    assert "VIOLATION account 66814140002: reserved 7 but open sessions hold 500" in output
    assert "VIOLATION account 66814140003: ACTIVE with balance -5" in output


async def test_check_config(tmp_path: Path) -> None:
    code, output = await creditd_command("check-config", str(default_config_path()))
    assert code == 0 and "1 plan(s), 4 tariff(s)" in output
    bad = tmp_path / "bad.toml"
    bad.write_text(default_config_path().read_text().replace('orphan_policy = "release"', 'orphan_policy = "keep"'))
    code, output = await creditd_command("check-config", str(bad))
    assert code == 2 and "sweeper.orphan_policy" in output
