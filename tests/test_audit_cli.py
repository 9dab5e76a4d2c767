"""`creditd audit` walks every account of a real Redis and prints each violation of the invariants,
exiting non-zero when there is any: clean after a scenario, and it reports a deliberately corrupted
account (balance off its ledger, reserved off its sessions, an ACTIVE account in debt, a reservation's
tariff change after its deadline).
`creditd check-config` validates a config offline and names the bad field."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import msgspec
import pytest

from creditd.resources import default_config_path
from creditd.store.account_record import read_account
from creditd.store.session_codec import read_session
from tests.harness import INITIAL, VOICE, Harness, tamper_account

pytestmark = pytest.mark.asyncio


async def creditd_command(*arguments: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "creditd", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    output, errors = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, output.decode() + errors.decode()


@pytest.mark.corrupts_data
async def test_audit_is_clean_then_reports_a_corrupted_account(creditd: Harness, redis_server) -> None:
    for n in range(5):
        await creditd.create_account(f"6681414000{n}", balance=1000)
        await creditd.charge(f"s{n}", INITIAL, 0, f"6681414000{n}", [(VOICE, 0, 0)])
    code, output = await creditd_command("audit", "--redis", redis_server.url)
    assert code == 0 and "5 accounts, 5 open sessions" in output and "0 violation(s)" in output

    keys = creditd.server_keys()
    tamper_account(creditd.redis, keys.account("66814140001"), balance=999)
    tamper_account(creditd.redis, keys.account("66814140002"), reserved=7)
    tamper_account(creditd.redis, keys.account("66814140003"), balance=-5, initial_balance=1000)
    session_key = keys.session("66814140004", "gw1", "s4")
    session = read_session(creditd.redis, session_key)
    assert session is not None and [row.rating_group for row in session.reservations] == [VOICE]
    late = msgspec.structs.replace(session.reservations[0], change_ms=session.reservations[0].deadline_ms + 1)
    creditd.redis.set(session_key, msgspec.msgpack.encode(msgspec.structs.replace(session, reservations=[late])))
    code, output = await creditd_command("audit", "--redis", redis_server.url)
    assert code == 1
    assert "VIOLATION account 66814140001: balance 999 but the ledger sums to 1000" in output
    assert "VIOLATION account 66814140002: reserved 7 but open sessions hold 500" in output
    assert "VIOLATION account 66814140003: ACTIVE with balance -5" in output
    assert "reservation:2: tariff change at" in output and "is not before its deadline" in output


async def test_check_config(tmp_path: Path) -> None:
    code, output = await creditd_command("check-config", str(default_config_path()))
    assert (
        code == 0 and "1 plan(s), 11 tariff(s), 2 destination(s) with 10 prefix(es), 0 zone(s), 1 timing(s)" in output
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(default_config_path().read_text().replace('orphan_policy = "release"', 'orphan_policy = "keep"'))
    code, output = await creditd_command("check-config", str(bad))
    assert code == 2 and "sweeper.orphan_policy" in output


@pytest.mark.corrupts_data
async def test_audit_detects_a_tampered_ledger_entry(creditd: Harness, redis_server) -> None:
    """A forger who edits an entry and fixes up every sum still breaks the hash chain."""
    account_id = "66814149999"
    await creditd.create_account(account_id, balance=1000)
    for n in range(3):
        await creditd.top_up(account_id, 100, f"t{n}")
    keys = creditd.server_keys()
    ledger_key = keys.ledger(account_id)
    entry = creditd.redis.lindex(ledger_key, 2).decode()  # the second top-up: 100 -> 1 100
    seq, time_ms, kind, amount, balance_after, actor, entry_hash, reference = entry.split("|", 7)
    forged = "|".join((seq, time_ms, kind, "1", str(int(balance_after) - 99), actor, entry_hash, reference))
    creditd.redis.lset(ledger_key, 2, forged)
    last = creditd.redis.lindex(ledger_key, 3).decode().split("|", 7)
    last[4] = str(int(last[4]) - 99)
    creditd.redis.lset(ledger_key, 3, "|".join(last))
    balance = int(read_account(creditd.redis, keys.account(account_id))["balance"])
    tamper_account(creditd.redis, keys.account(account_id), balance=balance - 99)
    code, output = await creditd_command("audit", "--redis", redis_server.url)
    assert code == 1
    violations = [line for line in output.splitlines() if line.startswith("VIOLATION")]
    assert violations == [
        f"VIOLATION account {account_id}: ledger seq 3: hash chain broken (entry altered, removed or inserted)",
        f"VIOLATION account {account_id}: ledger seq 4: hash chain broken (entry altered, removed or inserted)",
    ], output
