"""How throughput and Redis memory grow with the number of accounts: one creditd, accounts added in
steps (created straight through the create_account function, in pipelines, for speed), and after
each step a short unary phase over all of them and Redis' used_memory.

    python -m loadtest.growth --steps 1000,10000,100000,1000000 --duration 5
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import click
import msgspec
import redis
import uvloop

from creditd.keys import Keys
from loadtest.report import write_json
from loadtest.runner import free_port, stop, wait_serving
from loadtest.traffic import Shape, run_traffic

PIPELINE = 1000


class GrowthRow(msgspec.Struct):
    accounts: int
    charges_per_s: float
    p99_ms: float
    used_memory_bytes: int
    bytes_per_account: int
    keys: int


def create_accounts(client: redis.Redis, keys: Keys, first: int, last: int, balance: int) -> None:
    now_ms = int(time.time() * 1000)
    for start in range(first, last, PIPELINE):
        pipe = client.pipeline(transaction=False)
        for n in range(start, min(start + PIPELINE, last)):
            account_id = f"6690{n:07d}"
            key_list = (keys.account(account_id), keys.sessions(account_id), keys.ledger(account_id),
                        keys.events(account_id), keys.stats(account_id))  # fmt: skip
            pipe.execute_command("FCALL", "create_account", 5, *key_list, now_ms, account_id, "standard", balance,
                                 "", "", "", "", 0)  # fmt: skip
        pipe.execute()


async def measure(steps: list[int], duration_s: float, partitions: int = 256) -> list[GrowthRow]:
    workdir = Path(tempfile.mkdtemp(prefix="creditd-growth-"))
    target, data_dir = f"127.0.0.1:{free_port()}", workdir / "data"
    server = subprocess.Popen([sys.executable, "-m", "creditd", "serve", "--listen", target, "--data-dir",
                               str(data_dir), "--metrics-listen", "", "--log-level", "WARNING"],
                              stdin=subprocess.DEVNULL)  # fmt: skip
    client = redis.Redis(unix_socket_path=str(data_dir / "redis.sock"))
    rows, created = [], 0
    try:
        await wait_serving(target, server, "creditd.v1.CreditControl")
        baseline = client.info("memory")["used_memory"]
        for accounts in steps:
            create_accounts(client, Keys(partitions), created, accounts, 10**9)
            created = accounts
            client.execute_command("MEMORY", "PURGE")
            used = client.info("memory")["used_memory"]
            shape = Shape(accounts=accounts, duration_s=duration_s, top_ups_per_s=0, small_initial_balance=10**9)
            recorder, seconds = await run_traffic(target, "unary", shape, accounts, uuid.uuid4().hex[:8])
            phase = recorder.finish(f"{accounts} accounts", seconds)
            rows.append(GrowthRow(accounts, round(phase.charges_per_s), phase.latency_us["p99"] / 1000, used,
                                  (used - baseline) // accounts, client.dbsize()))  # fmt: skip
            click.echo(f"{accounts:>9} accounts: {phase.charges_per_s:7.0f} charges/s, p99 {rows[-1].p99_ms:6.1f} ms, "
                       f"used_memory {used / 2**20:8.1f} MiB ({rows[-1].bytes_per_account} B/account)")  # fmt: skip
        return rows
    finally:
        client.close()
        stop(server)


@click.command()
@click.option("--steps", default="1000,10000,100000", show_default=True, help="account counts, ascending")
@click.option("--duration", default=5.0, show_default=True, help="seconds of unary traffic per step")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=Path("loadtest/results/growth.json"))
def main(steps: str, duration: float, json_path: Path) -> None:
    counts = sorted(int(step) for step in steps.split(","))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        rows = runner.run(measure(counts, duration))
    write_json(rows, json_path)  # type: ignore[arg-type]
    click.echo(f"written: {json_path}")


if __name__ == "__main__":
    main()
