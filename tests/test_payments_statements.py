"""`creditd payments import`, `unmatched` and `assign` against the suite's real Redis, on ISO 20022
camt.053.001.08 and camt.054.001.08 files written here (the message's structure: Document /
BkToCstmrStmt / Stmt / Ntry, or BkToCstmrDbtCdtNtfctn / Ntfctn / Ntry, with Amt@Ccy, CdtDbtInd,
Sts/Cd, BookgDt, AcctSvcrRef and NtryDtls/TxDtls/RmtInf). Proves: a credit is applied once whatever
the re-imports, overlaps, duplicates inside a file and two imports at once (one top-up per
servicer reference, Redis unchanged by a repeat); debits and pending entries are left alone; a
foreign currency, an unknown account and a missing reference go to the queue, which assign
resolves once; a malformed file is an error naming the entry and its line, nothing applied."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path

import pytest

from creditd.store.keys import payments_key
from tests.harness import Harness, dump
from tests.payments import STATEMENT_ACCOUNT, Entry, camt, config_file, run_cli, top_ups

pytestmark = pytest.mark.asyncio
ACCOUNT, OTHER = STATEMENT_ACCOUNT, "66833330002"


async def _cli(creditd: Harness, tmp_path: Path, *args: str) -> tuple[int, str]:
    config = config_file(tmp_path)
    return await run_cli("payments", *args, "--redis", creditd.server.redis_url, "--config", str(config))


async def _import(creditd: Harness, tmp_path: Path, name: str, data: bytes) -> tuple[int, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return await _cli(creditd, tmp_path, "import", str(path))


async def test_reimports_overlaps_and_duplicates_apply_each_credit_once(creditd: Harness, tmp_path: Path) -> None:
    await creditd.create_account(ACCOUNT)
    first = camt([Entry("REF-1", "150.00"), Entry("REF-2", "20.50"), Entry("REF-1", "150.00")])
    status, output = await _import(creditd, tmp_path, "day1.xml", first)
    assert status == 0 and "2 applied, 1 duplicate, 0 unmatched" in output, output
    before = dump(creditd.redis)
    status, output = await _import(creditd, tmp_path, "day1-again.xml", first)
    assert "0 applied, 3 duplicate, 0 unmatched" in output, output
    assert dump(creditd.redis) == before
    overlapping = camt([Entry("REF-2", "20.50"), Entry("REF-3", "5.00")], kind="054")
    status, output = await _import(creditd, tmp_path, "day1-054.xml", overlapping)
    assert "1 applied, 1 duplicate, 0 unmatched" in output and "camt.054" in output, output
    assert await top_ups(creditd, ACCOUNT) == [
        (15_000, "bank bank:REF-1"),
        (2_050, "bank bank:REF-2"),
        (500, "bank bank:REF-3"),
    ]


async def test_two_imports_of_one_file_at_once_apply_it_once(creditd: Harness, tmp_path: Path) -> None:
    await creditd.create_account(ACCOUNT)
    data = camt([Entry(f"C-{n}", "10.00") for n in range(20)])
    (tmp_path / "a.xml").write_bytes(data)
    config = config_file(tmp_path)
    command = [sys.executable, "-m", "creditd", "payments", "import", str(tmp_path / "a.xml")]
    command += ["--redis", creditd.server.redis_url, "--config", str(config)]
    processes = [
        await asyncio.create_subprocess_exec(*command, stdout=PIPE, stderr=STDOUT, env=os.environ | {"PYTHONPATH": "."})
        for _ in range(2)
    ]
    outputs = [(await asyncio.wait_for(process.communicate(), 60))[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert len(await top_ups(creditd, ACCOUNT)) == 20
    assert (await creditd.get(ACCOUNT)).balance == 20_000


async def test_debits_and_pending_entries_are_left_alone(creditd: Harness, tmp_path: Path) -> None:
    await creditd.create_account(ACCOUNT)
    data = camt([Entry("D-1", "10.00", indicator="DBIT"), Entry("P-1", "10.00", status="PDNG"), Entry("B-1", "1.00")])
    status, output = await _import(creditd, tmp_path, "mixed.xml", data)
    assert "1 credit(s), 2 other entries" in output and "1 applied" in output, output
    assert await top_ups(creditd, ACCOUNT) == [(100, "bank bank:B-1")]


async def test_foreign_currency_and_unknown_references_wait_and_assign_resolves_them_once(
    creditd: Harness, tmp_path: Path
) -> None:
    await creditd.create_account(ACCOUNT)
    await creditd.create_account(OTHER)
    data = camt(
        [
            Entry("F-1", "30.00", currency="USD"),
            Entry("U-1", "40.00", remittance="for my phone please"),
            Entry("U-2", "50.00", remittance="TOPUP-66899999999"),
        ]
    )
    status, output = await _import(creditd, tmp_path, "odd.xml", data)
    assert "0 applied, 0 duplicate, 3 unmatched" in output, output
    assert "currency USD" in output and "unknown account 66899999999" in output
    status, output = await _cli(creditd, tmp_path, "unmatched")
    assert [line.split()[0] for line in output.splitlines()[1:]] == ["F-1", "U-1", "U-2"], output
    before = dump(creditd.redis)
    status, output = await _cli(creditd, tmp_path, "assign", "F-1", ACCOUNT)
    assert status == 1 and "amount_minor: the credit is in USD" in output, output
    status, output = await _cli(creditd, tmp_path, "assign", "U-9", ACCOUNT)
    assert status == 1 and "reference: no credit" in output, output
    assert dump(creditd.redis) == before
    assert (await _cli(creditd, tmp_path, "assign", "F-1", ACCOUNT, "--amount-minor", "105000"))[0] == 0
    assert (await _cli(creditd, tmp_path, "assign", "U-1", OTHER))[0] == 0
    assert (await _cli(creditd, tmp_path, "assign", "U-1", OTHER))[0] == 0  # a repeat: no more money
    status, output = await _cli(creditd, tmp_path, "assign", "U-1", ACCOUNT)
    assert status == 1 and "already assigned to" in output, output
    status, output = await _cli(creditd, tmp_path, "unmatched")
    assert [line.split()[0] for line in output.splitlines()[1:]] == ["U-2"], output
    status, output = await _import(creditd, tmp_path, "odd-again.xml", data)  # not queued again
    assert "0 applied, 3 duplicate, 0 unmatched" in output, output
    assert await top_ups(creditd, ACCOUNT) == [(105_000, "bank bank:F-1")]
    assert await top_ups(creditd, OTHER) == [(4_000, "bank bank:U-1")]


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"not xml at all", "not XML"),
        (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>', "not an ISO 20022 camt.053"),
        (camt([Entry("G-1", "1.00"), Entry("X-1", "12,50")]), "entry 2 (line 22): Amt: a positive decimal"),
        (camt([Entry("G-1", "1.00"), Entry("X-1", "1.001")]), "entry 2 (line 22): Amt: more decimals than THB"),
        (camt([Entry("G-1", "1.00"), Entry("X-1", "1.00", currency="baht")]), "entry 2 (line 22): Amt/@Ccy"),
        (camt([Entry("G-1", "1.00"), Entry("", "1.00")]), "entry 2 (line 22): AcctSvcrRef: missing"),
        (camt([Entry("G-1", "1.00"), Entry("X-1", "1.00", indicator="CR")]), "entry 2 (line 22): CdtDbtInd"),
    ],
)
async def test_a_malformed_file_names_the_entry_and_applies_nothing(
    creditd: Harness, tmp_path: Path, data: bytes, named: str
) -> None:
    await creditd.create_account(ACCOUNT)
    before = dump(creditd.redis)
    status, output = await _import(creditd, tmp_path, "bad.xml", data)
    assert status == 1 and named in output, output
    assert dump(creditd.redis) == before


async def test_an_import_cut_off_after_its_top_up_is_finished_by_the_next_once(
    creditd: Harness, tmp_path: Path
) -> None:
    """The record an import writes before its top-up ('applying', the account chosen), the top-up
    made, the import stopped: importing the file again records it applied, with no second top-up."""
    await creditd.create_account(ACCOUNT)
    key = payments_key("bank_entry", hashlib.sha256(b"R-9").hexdigest())
    applying = {"state": "applying", "account_id": ACCOUNT, "applied_minor": "4200", "since_ms": "1"}
    creditd.redis.hset(key, mapping={"servicer_reference": "R-9", "amount_minor": "4200", "currency": "THB"} | applying)
    await creditd.top_up(ACCOUNT, 4200, "bank:R-9", channel="bank")
    status, output = await _cli(creditd, tmp_path, "audit")
    assert status == 0 and "UNFINISHED 'bank bank:R-9'" in output, output
    status, output = await _import(creditd, tmp_path, "again.xml", camt([Entry("R-9", "42.00")]))
    assert "1 applied, 0 duplicate" in output, output
    assert await top_ups(creditd, ACCOUNT) == [(4200, "bank bank:R-9")]
    status, output = await _cli(creditd, tmp_path, "audit")
    assert status == 0 and "UNFINISHED" not in output, output
