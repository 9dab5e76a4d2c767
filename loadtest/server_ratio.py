"""python -m loadtest.server_ratio: issue #36's server target, the serving process' CPU per unary
Charge over the echo server's per RPC, both at their most, with the two measured in alternate
short slices of the same minutes.

    python -m loadtest.server_ratio --pairs 20 --slice 2

`python -m loadtest` measures the echo server in one phase and creditd in the next, seconds apart:
this machine's speed moves by tens of percent from one such span to the next (the reference work
before each phase, 28 to 47 ms within one run), and a round's ratio with it (1.159 to 1.438 for the
same code). Here `creditd serve` (the shipped config, its embedded Redis) and the echo server
(loadtest/echo.py) run side by side for the whole run, and the load generator plays loadtest's unary
traffic (the same shape, closed loop, as fast as answers come back) at one of them at a time, in
slices of `--slice` seconds: a pair is one slice of each, in the order echo-creditd, then
creditd-echo, then again (so neither side is always the one after a switch). Each server's CPU (from /proc;
creditd's without its Redis, which is counted apart, as loadtest does) is read over its own slices
only. The traffic's top-ups (20 a second) go to every side (the echo server answers TopUp too) and
count as RPCs answered: before, only creditd played them, their CPU counted against its Charges
(`ratio_per_charge` still reads it that way). The figure is the pooled ratio (creditd's CPU over its
RPCs, over all its slices, divided by the echo server's), beside the median of the pairs' ratios and
their spread, and how many calls shared each of creditd's Redis pipelines (its /metrics, read around
each of its slices): the fewer, the more of a pipeline's write, read and wake-up each pays. A slice
before the pairs warms each side up and is not counted.

With `--floor`, a third side plays in every round: the echo server making one Redis round trip a
Charge (loadtest/echo.py --redis-url, a PING to an embedded Redis of its own over creditd's lean
connection; that Redis counted apart, as creditd's is), the floor of any server answering a Charge
from one Redis call (`echo+redis`, as loadtest.server_instructions counts it in instructions). Its
ratio to the echo server is the part of the server target that talking to Redis takes before any
work of creditd's own; creditd's ratio to it is what creditd's own work costs. A round is then one
slice of each of the three, the first side rotating (echo, floor, creditd; floor, creditd, echo;
creditd, echo, floor), so each side takes each place as often.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import click
import grpc
import msgspec
import redis
import uvloop

from creditd import collector
from creditd.devtools.ports import free_port
from creditd.store.embedded import EmbeddedRedis
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from loadtest.cpu import server_and_redis_cpu_s
from loadtest.report import TOP_UP, write_json
from loadtest.runner import (
    embedded_server_pid,
    local_server_pid,
    shipped_config_with,
    start_creditd,
    start_echo,
    stop,
    wait_serving,
)
from loadtest.server_latency import scraped_samples
from loadtest.traffic import Shape, create_accounts, run_traffic

SIDES = ("echo", "creditd")
FLOOR = "echo+redis"  # as loadtest.server_instructions names it
RESULT_PATH = Path("loadtest/results/server_ratio.json")
PIPELINE_CALLS = "creditd_redis_pipeline_calls"


class Slice(msgspec.Struct):
    side: str  # "echo", "creditd" or FLOOR
    seconds: float
    rpcs: int
    server_cpu_s: float
    redis_cpu_s: float  # creditd's Redis or the floor's; 0 for the echo server
    errors: int
    # creditd's Redis pipelines in the slice and the function calls they carried (its /metrics); 0, 0 for echo
    redis_pipelines: int = 0
    redis_pipeline_calls: int = 0
    # the top-ups answered beside the Charges (loadtest's traffic plays them at every side)
    top_ups: int = 0


class ServerRatio(msgspec.Struct):
    pairs: int
    slice_s: float
    # CPU µs per RPC over all of a side's counted slices
    creditd_cpu_us_per_rpc: float
    echo_cpu_us_per_rpc: float
    creditd_redis_cpu_us_per_rpc: float
    ratio: float  # creditd's over echo's: issue #36's target is <= 1.25
    # the same over Charges alone: the top-ups' CPU counted, their RPCs not (how creditd's side was
    # read before both sides played them)
    ratio_per_charge: float
    # how many calls (nearly all Charges) shared a Redis pipeline over creditd's slices: the fewer, the
    # more of a pipeline's write, read and wake-up each pays
    calls_per_redis_pipeline: float
    pair_ratios: list[float]
    median_pair_ratio: float
    slices: list[Slice]  # in the order played
    # with --floor: the floor's CPU per RPC (its Redis apart), its ratio to the echo server's, and
    # creditd's to the floor's, pooled over their slices; 0 without it
    floor_cpu_us_per_rpc: float = 0.0
    floor_redis_cpu_us_per_rpc: float = 0.0
    floor_ratio: float = 0.0
    creditd_over_floor: float = 0.0


class Server:
    """One side: its address, the processes its CPU is read from, and the traffic played at it."""

    def __init__(self, side: str, target: str, process: subprocess.Popen[bytes], shape: Shape) -> None:
        self.side, self.target, self.process, self.shape = side, target, process, shape
        self.redis_pid = 0
        self.metrics_url = ""  # creditd's

    async def play(self, seconds: float) -> Slice:
        shape = msgspec.structs.replace(self.shape, duration_s=seconds)
        pipelines_before = await asyncio.to_thread(self.pipelines)
        server_before, redis_before = self.cpu_s()
        recorder, elapsed = await run_traffic(self.target, "unary", shape, 1, uuid.uuid4().hex[:8])
        server_after, redis_after = self.cpu_s()
        pipelines_after = await asyncio.to_thread(self.pipelines)
        server_cpu_s, redis_cpu_s = server_after - server_before, redis_after - redis_before
        return Slice(
            self.side,
            elapsed,
            recorder.rpcs,
            server_cpu_s,
            redis_cpu_s,
            sum(recorder.errors.values()),
            pipelines_after[0] - pipelines_before[0],
            pipelines_after[1] - pipelines_before[1],
            recorder.results[TOP_UP],
        )

    def pipelines(self) -> tuple[int, int]:
        """creditd's Redis pipelines so far and the calls they carried (0, 0 without /metrics)."""
        if not self.metrics_url:
            return 0, 0
        found = {"count": 0.0, "sum": 0.0}
        for sample in scraped_samples(self.metrics_url):
            if sample.name in (PIPELINE_CALLS + "_count", PIPELINE_CALLS + "_sum"):
                found[sample.name.rpartition("_")[2]] += sample.value
        return int(found["count"]), int(found["sum"])

    def cpu_s(self) -> tuple[float, float]:
        return server_and_redis_cpu_s(self.process.pid, self.redis_pid)


def _per_rpc_us(slices: list[Slice], side: str, of_redis: bool = False, charges_only: bool = False) -> float:
    """A side's CPU per RPC answered (Charges and top-ups), or with charges_only per Charge (the
    top-ups' CPU counted, not their RPCs)."""
    counted = [one for one in slices if one.side == side]
    rpcs = sum(one.rpcs + (0 if charges_only else one.top_ups) for one in counted)
    assert rpcs, f"no {side} RPC was answered"
    return sum(one.redis_cpu_s if of_redis else one.server_cpu_s for one in counted) / rpcs * 1_000_000


def _pooled(slices: list[Slice], over: str, under: str) -> float:
    return _per_rpc_us(slices, over) / _per_rpc_us(slices, under)


def summary(slices: list[Slice], slice_s: float, sides: tuple[str, ...] = SIDES) -> ServerRatio:
    """The pooled ratios and each round's, from the slices in the order played (a round: one slice of
    each side, in a row)."""
    creditd, echo = _per_rpc_us(slices, "creditd"), _per_rpc_us(slices, "echo")
    rounds = [slices[index : index + len(sides)] for index in range(0, len(slices), len(sides))]
    pair_ratios = [round(_pooled(one, "creditd", "echo"), 3) for one in rounds]
    found = ServerRatio(
        pairs=len(rounds),
        slice_s=slice_s,
        creditd_cpu_us_per_rpc=round(creditd, 1),
        echo_cpu_us_per_rpc=round(echo, 1),
        creditd_redis_cpu_us_per_rpc=round(_per_rpc_us(slices, "creditd", of_redis=True), 1),
        ratio=round(creditd / echo, 3),
        ratio_per_charge=round(
            _per_rpc_us(slices, "creditd", charges_only=True) / _per_rpc_us(slices, "echo", charges_only=True), 3
        ),
        calls_per_redis_pipeline=round(
            sum(one.redis_pipeline_calls for one in slices) / max(1, sum(one.redis_pipelines for one in slices)), 2
        ),
        pair_ratios=pair_ratios,
        median_pair_ratio=round(statistics.median(pair_ratios), 3),
        slices=slices,
    )
    if FLOOR in sides:
        found.floor_cpu_us_per_rpc = round(_per_rpc_us(slices, FLOOR), 1)
        found.floor_redis_cpu_us_per_rpc = round(_per_rpc_us(slices, FLOOR, of_redis=True), 1)
        found.floor_ratio = round(_pooled(slices, FLOOR, "echo"), 3)
        found.creditd_over_floor = round(_pooled(slices, "creditd", FLOOR), 3)
    return found


async def _start(workdir: Path, shape: Shape, floor_url: str) -> dict[str, Server]:
    creditd_target, echo_target = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    data_dir = workdir / "data"
    config = shipped_config_with(workdir, {})
    metrics_listen = f"127.0.0.1:{free_port()}"
    creditd = start_creditd(
        creditd_target, "--data-dir", str(data_dir), "--config", str(config), metrics_listen=metrics_listen
    )
    servers = {
        "creditd": Server("creditd", creditd_target, creditd, shape),
        "echo": Server("echo", echo_target, start_echo(echo_target), shape),
    }
    if floor_url:
        floor_target = f"127.0.0.1:{free_port()}"
        servers[FLOOR] = Server(FLOOR, floor_target, start_echo(floor_target, floor_url), shape)
    servers["creditd"].metrics_url = f"http://{metrics_listen}/metrics"
    try:
        await wait_serving(creditd_target, creditd, "creditd.v1.CreditControl")
        for side in servers.keys() - {"creditd"}:
            await wait_serving(servers[side].target, servers[side].process)
        servers["creditd"].redis_pid = embedded_server_pid(data_dir)
        if floor_url:
            with redis.Redis.from_url(floor_url) as client:
                servers[FLOOR].redis_pid = local_server_pid(client.info("server"))
        async with grpc.aio.insecure_channel(creditd_target) as channel:
            await create_accounts(pb_grpc.AccountsStub(channel), shape)
    except BaseException:
        for server in servers.values():
            stop(server.process)
        raise
    return servers


def round_order(sides: tuple[str, ...], number: int) -> tuple[str, ...]:
    """Round `number`'s order: the sides rotated by one a round, so each takes each place as often
    (with two sides: echo-creditd, then creditd-echo)."""
    first = number % len(sides)
    return sides[first:] + sides[:first]


async def measure(pair_count: int, slice_s: float, shape: Shape, floor: bool = False) -> ServerRatio:
    workdir = Path(tempfile.mkdtemp(prefix="creditd-server-ratio-"))
    sides = ("echo", FLOOR, "creditd") if floor else SIDES
    servers: dict[str, Server] = {}
    try:
        with contextlib.ExitStack() as stack:
            floor_url = stack.enter_context(EmbeddedRedis(workdir / "floor-redis")).url if floor else ""
            servers = await _start(workdir, shape, floor_url)
            collector.freeze_after_start_up()  # the generator's own collections, as in loadtest
            for side in sides:  # warm-up, not counted
                await servers[side].play(slice_s)
            slices: list[Slice] = []
            for number in range(pair_count):
                order = round_order(sides, number)
                slices += [await servers[side].play(slice_s) for side in order]
                played = slices[-len(sides) :]
                ratios = f"{_pooled(played, 'creditd', 'echo'):.3f}"
                if floor:
                    ratios += f", floor / echo {_pooled(played, FLOOR, 'echo'):.3f}"
                click.echo(f"round {number + 1} ({' then '.join(order)}): {ratios}")
            return summary(slices, slice_s, sides)
    finally:
        for server in servers.values():
            stop(server.process)
        shutil.rmtree(workdir, ignore_errors=True)


@click.command()
@click.option(
    "--pairs", type=click.IntRange(1, 200), default=20, show_default=True, help="rounds of one slice of each side"
)
@click.option("--slice", "slice_s", type=click.FloatRange(0.5, 60), default=2.0, show_default=True, help="seconds")
@click.option("--floor", is_flag=True, help=f"a third side, {FLOOR}: the echo server making one Redis call a Charge")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=RESULT_PATH)
def main(pairs: int, slice_s: float, floor: bool, json_path: Path) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        found = runner.run(measure(pairs, slice_s, Shape(), floor))
    errors = sum(one.errors for one in found.slices)
    click.echo(
        f"creditd {found.creditd_cpu_us_per_rpc} µs CPU per unary Charge (its Redis "
        f"{found.creditd_redis_cpu_us_per_rpc}; {found.calls_per_redis_pipeline} calls a Redis pipeline), "
        f"echo {found.echo_cpu_us_per_rpc} µs per RPC, over {pairs} rounds of slices of {slice_s} s"
    )
    click.echo(
        f"server CPU per unary Charge / echo's per RPC (target <= 1.25): {found.ratio:.3f}; rounds' median "
        f"{found.median_pair_ratio:.3f} ({min(found.pair_ratios):.3f}-{max(found.pair_ratios):.3f}); errors {errors}"
    )
    click.echo(f"the same over Charges alone (the top-ups' CPU counted, not their RPCs): {found.ratio_per_charge:.3f}")
    if floor:
        click.echo(
            f"{FLOOR} {found.floor_cpu_us_per_rpc} µs per RPC (its Redis {found.floor_redis_cpu_us_per_rpc}): "
            f"{FLOOR} / echo {found.floor_ratio:.3f}; creditd / {FLOOR} {found.creditd_over_floor:.3f}"
        )
    write_json(found, json_path)
    click.echo(f"written: {json_path}")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
