"""python -m loadtest.idle: what a serving process costs while no request comes, and what its Redis
spends on it: every process of a deployment pays it all the time, and one Redis pays it for all
of them.

    python -m loadtest.idle --duration 20 --rounds 3

Two `creditd serve` processes, each on its own embedded server: one with the shipped config, one
with the sweeper off (the rest of the idle cost: the health check, gRPC's and the metrics endpoint's
timers). Both sit idle through every round; each round reads the CPU of each process and each
Redis (each process' own CPU-time clock, to the nanosecond: /proc's ticks of 10 ms resolved 0.5 ms
a second in a round of 20 s) over `--duration` seconds, in ms of CPU a second; a figure is the
median of the rounds, with the rounds beside it.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import click
import msgspec
import uvloop

from creditd.devtools.ports import free_port
from loadtest.cpu import process_cpu_s
from loadtest.report import write_json
from loadtest.runner import embedded_server_pid, shipped_config_with, start_creditd, stop, wait_serving
from loadtest.server_instructions import config_without_sweeper


class IdleCell(msgspec.Struct):
    config: str  # "shipped" or "sweeper off"
    creditd_cpu_ms_per_s: float  # medians of the rounds
    redis_cpu_ms_per_s: float
    creditd_rounds: list[float]
    redis_rounds: list[float]


class Idle:
    """One creditd and its embedded server, left idle."""

    def __init__(self, name: str, config: Path, workdir: Path) -> None:
        self.name, self.target, self.data_dir = name, f"127.0.0.1:{free_port()}", workdir / "data"
        self.process: subprocess.Popen[bytes] = start_creditd(
            self.target, "--data-dir", str(self.data_dir), "--config", str(config)
        )
        self.redis_pid = 0
        self.creditd_rounds: list[float] = []
        self.redis_rounds: list[float] = []

    async def started(self) -> None:
        await wait_serving(self.target, self.process, "creditd.v1.CreditControl")
        self.redis_pid = embedded_server_pid(self.data_dir)
        assert self.redis_pid, f"{self.name}: its embedded server runs on this machine"

    def cpu_s(self) -> tuple[float, float]:
        """creditd's CPU seconds so far (its Redis, a child, apart) and its Redis'."""
        return process_cpu_s(self.process.pid), process_cpu_s(self.redis_pid)

    def cell(self) -> IdleCell:
        return IdleCell(
            self.name,
            statistics.median(self.creditd_rounds),
            statistics.median(self.redis_rounds),
            self.creditd_rounds,
            self.redis_rounds,
        )


async def measure(rounds: int, duration_s: float, settle_s: float) -> list[IdleCell]:
    workdir = Path(tempfile.mkdtemp(prefix="creditd-idle-"))
    (workdir / "shipped").mkdir()
    (workdir / "off").mkdir()
    servers = [
        Idle("shipped", shipped_config_with(workdir / "shipped", {}), workdir / "shipped"),
        Idle("sweeper off", config_without_sweeper(workdir / "off"), workdir / "off"),
    ]
    try:
        for server in servers:
            await server.started()
        await asyncio.sleep(settle_s)  # start-up's own work (the library load, the first passes) done
        for number in range(rounds):
            started_at, before = time.perf_counter(), [server.cpu_s() for server in servers]
            await asyncio.sleep(duration_s)
            seconds, after = time.perf_counter() - started_at, [server.cpu_s() for server in servers]
            for server, (creditd0, redis0), (creditd1, redis1) in zip(servers, before, after, strict=True):
                server.creditd_rounds.append(round((creditd1 - creditd0) / seconds * 1000, 2))
                server.redis_rounds.append(round((redis1 - redis0) / seconds * 1000, 2))
            click.echo(
                f"round {number + 1}: "
                + ", ".join(f"{s.name} {s.creditd_rounds[-1]} + {s.redis_rounds[-1]} ms/s" for s in servers)
            )
        return [server.cell() for server in servers]
    finally:
        for server in servers:
            stop(server.process)


@click.command()
@click.option("--rounds", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--duration", type=click.FloatRange(0.5, 600), default=20.0, show_default=True, help="seconds a round")
@click.option("--settle", type=click.FloatRange(0, 60), default=3.0, show_default=True, help="seconds before round 1")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=Path("loadtest/results/idle.json"))
def main(rounds: int, duration: float, settle: float, json_path: Path) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        cells = runner.run(measure(rounds, duration, settle))
    for cell in cells:
        click.echo(
            f"{cell.config:>12}: creditd {cell.creditd_cpu_ms_per_s} ms/s "
            f"({min(cell.creditd_rounds)}-{max(cell.creditd_rounds)}), its Redis {cell.redis_cpu_ms_per_s} ms/s "
            f"({min(cell.redis_rounds)}-{max(cell.redis_rounds)})"
        )
    write_json(cells, json_path)
    click.echo(f"written: {json_path}")


if __name__ == "__main__":
    main()
