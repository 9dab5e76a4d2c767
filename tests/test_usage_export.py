"""`creditd usage export` against a real Redis: 4 000 usage records, the exporter killed (SIGKILL)
after its first batches, then run again onto the same file: the file holds every record exactly
once, in feed order, whichever instant the kill came (a partial last line is dropped on resume).
Both formats; --to stops at an id; a bad --from is refused naming the option."""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import sys
from pathlib import Path

import pytest

from creditd.store.embedded import EmbeddedRedis
from creditd.v1 import creditd_pb2 as pb
from tests.harness import EVENT, SMS, Harness, charge_request

pytestmark = pytest.mark.asyncio
RECORDS = 4000
BATCH = 500


async def make_records(creditd: Harness) -> None:
    accounts = [f"6681818{n:04d}" for n in range(20)]
    for account_id in accounts:
        await creditd.create_account(account_id, balance=10**7)
    for start in range(0, RECORDS, BATCH):
        requests = [
            charge_request(f"x{n}", EVENT, 0, accounts[n % len(accounts)], [(SMS, 0, 0)])
            for n in range(start, start + BATCH)
        ]
        answers = await creditd.credit_control.ChargeBatch(pb.ChargeBatchRequest(requests=requests))
        assert all(answer.result == pb.SUCCESS for answer in answers.answers)
    await asyncio.sleep(0.1)  # past the export's settle horizon


async def exporter(url: str, out: Path, output_format: str, *extra: str) -> asyncio.subprocess.Process:
    arguments = ["usage", "export", "--redis", url, "--out", str(out), "--format", output_format, *extra]
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "creditd", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


def ids_in(out: Path, output_format: str) -> list[str]:
    lines = out.read_text().splitlines()
    if output_format == "jsonl":
        return [json.loads(line)["id"] for line in lines]
    rows = list(csv.reader(lines))
    assert rows[0][0] == "id" and rows[0][1] == "time_ms"
    return [row[0] for row in rows[1:]]


def feed_order(record_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in record_id.split("-"))


@pytest.mark.parametrize("output_format", ["csv", "jsonl"])
async def test_a_killed_export_resumes_without_gap_or_repeat(
    creditd: Harness, redis_server: EmbeddedRedis, tmp_path: Path, output_format: str
) -> None:
    await make_records(creditd)
    out = tmp_path / f"usage.{output_format}"
    first = await exporter(redis_server.url, out, output_format, "--batch-size", "50")
    assert first.stderr is not None
    while b"exported through" not in await asyncio.wait_for(first.stderr.readline(), 60):
        pass
    first.send_signal(signal.SIGKILL)
    await first.wait()
    partial = ids_in(out, output_format) if out.read_text().endswith("\n") else None
    assert partial is None or len(partial) < RECORDS, "the kill came after the end: nothing was resumed"

    second = await exporter(redis_server.url, out, output_format)
    output, errors = await asyncio.wait_for(second.communicate(), 120)
    assert second.returncode == 0, errors.decode()[-2000:]
    ids = ids_in(out, output_format)
    assert len(ids) == RECORDS and len(set(ids)) == RECORDS
    assert ids == sorted(ids, key=feed_order)
    assert output.decode().strip() == f"last id: {ids[-1]}"

    # --to stops at an id; running again adds nothing
    bounded = tmp_path / "first-ten.csv"
    third = await exporter(redis_server.url, bounded, "csv", "--to", ids[9])
    await asyncio.wait_for(third.communicate(), 60)
    assert ids_in(bounded, "csv") == ids[:10]
    again = await exporter(redis_server.url, out, output_format)
    await asyncio.wait_for(again.communicate(), 60)
    assert ids_in(out, output_format) == ids


async def test_a_bad_position_is_refused(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    process = await exporter(redis_server.url, tmp_path / "x.csv", "csv", "--from", "yesterday")
    _, errors = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2 and "--from: must be an event id" in errors.decode()
