"""Throughput scaling: the same traffic against a Redis Cluster of 1 and of 3 primaries (started from
the embedded binary, no replicas), each with 1 and with 2 creditd processes in front; per cell,
unary and ChargeBatch charges/s, and per topology the Redis floor (raw pipelined FCALL, split by
node). Ratios are to the 1-primary, 1-process cell of the same run; every cell ends audited.

    python -m loadtest.scaling --duration 5

On a machine with fewer cores than processes, the point is the shape, not the absolute figures.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from pathlib import Path

import click
import grpc
import msgspec
import uvloop

from creditd.config.settings import RedisSettings, load_settings
from creditd.config.types import DEFAULT_PARTITIONS
from creditd.devtools.local_topology import LocalCluster
from creditd.devtools.ports import free_port
from creditd.resources import default_config_path
from creditd.store.connection import connect, connect_sync
from creditd.store.library import ensure_library, render_library
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from loadtest.cpu import CoresUsed, CpuMeter
from loadtest.redis_floor import measure_redis_floor
from loadtest.report import ratio, write_json
from loadtest.runner import audit, start_creditd, stop, wait_serving
from loadtest.traffic import Shape, create_accounts, run_traffic

PRIMARIES = (1, 3)
PROCESSES = (1, 2)
SEED = 1


class Cell(msgspec.Struct, frozen=True):
    unary_charges_per_s: float
    batch_charges_per_s: float
    unary_cores: CoresUsed
    batch_cores: CoresUsed
    audit_violations: list[str]


class ScalingRow(Cell, frozen=True):
    primaries: int
    processes: int
    redis_floor_charges_per_s: float
    unary_ratio: float = 0.0
    batch_ratio: float = 0.0


async def _phase(target: str, mode: str, shape: Shape, meter: CpuMeter) -> tuple[float, CoresUsed]:
    """Charges/s of one phase and the cores each role used meanwhile."""
    recorder, seconds = await run_traffic(target, mode, shape, SEED, uuid.uuid4().hex[:8])
    cores = meter.stop()
    assert not recorder.errors, f"{mode} phase failed requests: {dict(recorder.errors)}"
    return (round(recorder.charges / seconds) if seconds else 0.0), cores


def _flush(url: str) -> None:
    """Each cell starts from no accounts (the function library survives FLUSHALL)."""
    client = connect_sync(url, RedisSettings())
    try:
        client.flushall()
    finally:
        client.close()


async def measure_cell(url: str, redis_pids: list[int], processes: int, shape: Shape, batch_size: int) -> Cell:
    """Both phases through `processes` creditd processes in front of `url`, then the audit."""
    await asyncio.to_thread(_flush, url)
    target = f"127.0.0.1:{free_port()}"
    server = start_creditd(target, "--redis", url, "--workers", str(processes))
    try:
        await wait_serving(target, server, "creditd.v1.CreditControl")
        async with grpc.aio.insecure_channel(target) as channel:
            await create_accounts(pb_grpc.AccountsStub(channel), shape)
        unary, unary_cores = await _phase(target, "unary", shape, CpuMeter([server.pid], redis_pids))
        batch_shape = msgspec.structs.replace(shape, sessions_per_gateway=batch_size)
        batch, batch_cores = await _phase(target, "batch", batch_shape, CpuMeter([server.pid], redis_pids))
    finally:
        stop(server)
    violations, _ = await asyncio.to_thread(audit, url, DEFAULT_PARTITIONS)
    return Cell(unary, batch, unary_cores, batch_cores, violations)


async def load_library(url: str) -> None:
    """The floor calls creditd's functions before any creditd has started and loaded them."""
    client = connect(url, RedisSettings())
    try:
        await ensure_library(client, render_library(load_settings(default_config_path())))
    finally:
        await client.aclose()


async def measure(shape: Shape, batch_size: int) -> list[ScalingRow]:
    rows: list[ScalingRow] = []
    for primaries in PRIMARIES:
        with LocalCluster(Path(tempfile.mkdtemp(prefix="creditd-scaling-")), primaries=primaries) as cluster:
            await load_library(cluster.url)
            floor_recorder, floor_seconds = await measure_redis_floor(cluster.url, DEFAULT_PARTITIONS, shape.duration_s)
            floor = round(floor_recorder.charges / floor_seconds)
            redis_pids = [server.process.pid for server in cluster.servers if server.process is not None]
            for processes in PROCESSES:
                cell = await measure_cell(cluster.url, redis_pids, processes, shape, batch_size)
                rows.append(
                    ScalingRow(
                        **msgspec.structs.asdict(cell),
                        primaries=primaries,
                        processes=processes,
                        redis_floor_charges_per_s=floor,
                    )
                )
                click.echo(
                    f"{primaries} primaries, {processes} creditd: unary {cell.unary_charges_per_s:7.0f}/s "
                    f"(cores {cell.unary_cores}), batch {cell.batch_charges_per_s:7.0f}/s "
                    f"(cores {cell.batch_cores}), redis floor {floor:7.0f}/s, "
                    f"audit {cell.audit_violations or 'clean'}"
                )
    base = rows[0]
    return [
        msgspec.structs.replace(
            row,
            unary_ratio=ratio(row.unary_charges_per_s, base.unary_charges_per_s),
            batch_ratio=ratio(row.batch_charges_per_s, base.batch_charges_per_s),
        )
        for row in rows
    ]


def markdown(rows: list[ScalingRow]) -> str:
    lines = [
        "| primaries | creditd processes | unary charges/s | × | cores used | ChargeBatch charges/s | × "
        "| cores used | Redis floor/s |",
        "|---:|---:|---:|---:|:---:|---:|---:|:---:|---:|",
    ]
    lines += [
        f"| {row.primaries} | {row.processes} | {row.unary_charges_per_s:.0f} | {row.unary_ratio:.2f} | "
        f"{row.unary_cores} | {row.batch_charges_per_s:.0f} | {row.batch_ratio:.2f} | {row.batch_cores} | "
        f"{row.redis_floor_charges_per_s:.0f} |"
        for row in rows
    ]
    lines.append("\ncores used: load generator / creditd processes / Redis nodes, CPU seconds per second of the phase")
    return "\n".join(lines)


@click.command()
@click.option("--duration", default=5.0, show_default=True, help="seconds per phase")
@click.option("--gateways", default=4, show_default=True)
@click.option("--sessions", default=16, show_default=True, help="concurrent sessions per gateway (unary)")
@click.option("--batch-size", default=200, show_default=True, help="requests per ChargeBatch")
@click.option("--accounts", default=Shape().accounts, show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=Path("loadtest/results/scaling.json"))
def main(duration: float, gateways: int, sessions: int, batch_size: int, accounts: int, json_path: Path) -> None:
    shape = Shape(gateways=gateways, sessions_per_gateway=sessions, duration_s=duration, accounts=accounts)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        rows = runner.run(measure(shape, batch_size))
    click.echo(markdown(rows))
    write_json(rows, json_path)
    click.echo(f"written: {json_path}")
    sys.exit(1 if any(row.audit_violations for row in rows) else 0)


if __name__ == "__main__":
    main()
