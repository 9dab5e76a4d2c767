"""The embedded server's allocators side by side: Redis' CPU per call on glibc's malloc and on jemalloc,
each at every account count, measured in interleaved rounds.

    python -m loadtest.allocators --accounts 1000,1000000 --rounds 5 --duration 4

loadtest.growth measures one server step by step, minutes apart, and this machine's speed drifts
between runs by more than the difference it looks for. Here every (allocator, account count) pair
gets its own creditd and embedded server, all started and filled first; then each round plays a
short unary phase on each in turn, so that a slow minute falls on all of them alike. A cell's figure
is Redis' main-thread CPU per function call (INFO cpu over INFO commandstats' calls), the median of
its rounds, with the rounds beside it. Every server lives through the whole run, so the figures sit
above those of a run of one.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import cast, get_args

import click
import msgspec
import redis
import uvloop

from creditd.config.settings import EmbeddedAllocator
from creditd.devtools.ports import free_port
from creditd.store.calls import Calls
from creditd.store.embedded import embedded_url
from loadtest.growth import create_accounts, fcall_figures, redis_cpu_s, server_description, wait_for_no_child
from loadtest.report import write_json
from loadtest.runner import allocator_config, start_creditd, stop, wait_serving
from loadtest.traffic import Shape, run_traffic


class AllocatorCell(msgspec.Struct):
    allocator: str  # the setting asked for
    server: str  # what ran the calls, e.g. "valkey 9.1.2, malloc jemalloc (preloaded)"
    accounts: int
    redis_cpu_usec_per_call: float  # the median of the rounds
    rounds: list[float]


class Cell:
    """One creditd and its embedded server, filled with its accounts."""

    def __init__(self, allocator: EmbeddedAllocator, accounts: int, workdir: Path) -> None:
        self.allocator, self.accounts = allocator, accounts
        self.target, data_dir = f"127.0.0.1:{free_port()}", workdir / "data"
        workdir.mkdir(parents=True)
        config = allocator_config(workdir, allocator)
        self.process: subprocess.Popen[bytes] = start_creditd(
            self.target, "--data-dir", str(data_dir), "--config", str(config)
        )
        self.data_dir = data_dir
        self.client: redis.Redis | None = None
        self.rounds: list[float] = []

    async def fill(self) -> str:
        await wait_serving(self.target, self.process, "creditd.v1.CreditControl")
        self.client = redis.Redis.from_url(embedded_url(self.data_dir))
        create_accounts(self.client, Calls(256), 0, self.accounts, 10**9)
        return server_description(self.client)

    async def play(self, duration_s: float) -> float:
        """One unary phase over every account; Redis' main-thread CPU µs per function call."""
        assert self.client is not None, "fill() first"
        wait_for_no_child(self.client)
        shape = Shape(accounts=self.accounts, duration_s=duration_s, top_ups_per_s=0, small_initial_balance=10**9)
        self.client.config_resetstat()
        before = redis_cpu_s(self.client)
        await run_traffic(self.target, "unary", shape, self.accounts, uuid.uuid4().hex[:8])
        self.rounds.append(round(fcall_figures(self.client, before)[1], 1))
        return self.rounds[-1]

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        stop(self.process)


async def compare(
    allocators: list[EmbeddedAllocator], account_counts: list[int], rounds: int, duration_s: float
) -> list[AllocatorCell]:
    workdir = Path(tempfile.mkdtemp(prefix="creditd-allocators-"))
    cells: list[Cell] = []
    try:
        servers = []
        for allocator in allocators:
            for accounts in account_counts:
                cells.append(Cell(allocator, accounts, workdir / f"{allocator}-{accounts}"))
                servers.append(await cells[-1].fill())
                click.echo(f"{allocator:>8} {accounts:>9} accounts: {servers[-1]}")
        for number in range(rounds):
            figures = [f"{await cell.play(duration_s):6.1f}" for cell in cells]
            click.echo(f"round {number + 1}: " + ", ".join(figures) + " µs per call")
        return [
            AllocatorCell(cell.allocator, server, cell.accounts, statistics.median(cell.rounds), cell.rounds)
            for cell, server in zip(cells, servers, strict=True)
        ]
    finally:
        for cell in cells:
            cell.close()


@click.command()
@click.option("--accounts", default="1000,1000000", show_default=True, help="account counts, one server each")
@click.option(
    "--allocators",
    default="libc,jemalloc",
    show_default=True,
    help=f"redis.embedded_allocator values, one server each ({', '.join(get_args(EmbeddedAllocator))})",
)
@click.option("--rounds", type=click.IntRange(1, 20), default=5, show_default=True)
@click.option("--duration", default=4.0, show_default=True, help="seconds of unary traffic per server per round")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=Path("loadtest/results/allocators.json"))
def main(accounts: str, allocators: str, rounds: int, duration: float, json_path: Path) -> None:
    account_counts = sorted(int(count) for count in accounts.split(","))
    chosen = [name.strip() for name in allocators.split(",")]
    if unknown := [name for name in chosen if name not in get_args(EmbeddedAllocator)]:
        raise click.BadParameter(f"unknown allocator {unknown[0]!r}", param_hint="--allocators")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        cells = runner.run(compare(cast(list[EmbeddedAllocator], chosen), account_counts, rounds, duration))
    for cell in cells:
        low, high = min(cell.rounds), max(cell.rounds)
        click.echo(
            f"{cell.server:>45} {cell.accounts:>9} accounts: {cell.redis_cpu_usec_per_call:6.1f} µs ({low}-{high})"
        )
    for allocator in chosen:
        row = [cell for cell in cells if cell.allocator == allocator]
        if len(row) > 1:
            rise = row[-1].redis_cpu_usec_per_call / row[0].redis_cpu_usec_per_call - 1
            click.echo(f"{allocator}: {row[0].accounts} -> {row[-1].accounts} accounts {rise:+.0%}")
    write_json(cells, json_path)
    click.echo(f"written: {json_path}")


if __name__ == "__main__":
    main()
