"""python -m loadtest.rating: what the rating engine costs in Redis. The same standard traffic (data
and voice sessions of INITIAL, 3 UPDATE, TERMINATE, one SMS EVENT in ten, calls to Thai and foreign
numbers, one session in ten roaming) is piped straight into the `charge` function of an embedded
server, one run per library:

- plain: the sample plan without destinations, zones or timings (one tariff per rating group);
- sample: the sample plan as shipped (10 prefixes);
- N prefixes: the sample plan plus N generated prefixes (a prefixes_file) in its international set,
  the called numbers drawn from them;
- sample without usage records: the sample library with its usage record writing cut out (what a
  call cost before usage records), for the cost of the records themselves.

For each: FUNCTION LOAD time, the first call's time, charges/s, the Redis time per call from INFO
commandstats (usec_per_call of FCALL) and the memory per usage record (MEMORY USAGE of the usage
streams over their length), with ratios to plain and sample measured in the same run. The
libraries take turns for several rounds and each figure is the median of its rounds: these machines
are shared, and a single run of each moves by 10 %."""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import click
import msgspec
import redis
import uvloop

from creditd.api.answers import leading_result
from creditd.config.settings import RedisSettings, Settings, load_settings
from creditd.resources import default_config_path
from creditd.store.calls import Calls, NewAccount, fcall_words
from creditd.store.codes import AnswerFormat
from creditd.store.connection import connect
from creditd.store.embedded import EmbeddedRedis
from creditd.store.keys import usage_of_partition
from creditd.store.library import render_library
from creditd.v1 import creditd_pb2 as pb
from loadtest.traffic import SessionScript, Shape

ACCOUNTS = 200
PIPELINE_REQUESTS = 200
CONCURRENT_PIPELINES = 4
PLAIN_TARIFFS = ("data", "voice_out", "sms", "voice_in")

# The format the charges ask their answers in: the gRPC edge's, as most traffic takes
# (CREDITD_LOADTEST_ANSWER_FORMAT=JSON: the other fronts').
ANSWER_FORMAT = AnswerFormat[os.environ.get("CREDITD_LOADTEST_ANSWER_FORMAT", "PROTOBUF")]


def plain_settings(sample: Settings) -> Settings:
    """The sample plan as it was before rating: one tariff per rating group, no criteria."""
    plan = sample.plans["standard"]
    tariffs = [
        msgspec.structs.replace(tariff, destinations=[], zones=[], timing=None)
        for tariff in plan.tariffs
        if tariff.name in PLAIN_TARIFFS
    ]
    plans = {"standard": msgspec.structs.replace(plan, tariffs=tariffs)}
    return msgspec.structs.replace(sample, plans=plans, destinations={}, timings={})


def write_prefix_table(directory: Path, count: int, rng: random.Random) -> tuple[Path, list[str]]:
    """`count` distinct prefixes of 3 to 7 digits (none under 66, Thailand's), as "prefix,name" lines."""
    prefixes: set[str] = set()
    while len(prefixes) < count:
        prefix = str(rng.randrange(10 ** (length := rng.randint(2, 6)), 10 ** (length + 1)))
        if not prefix.startswith("66"):
            prefixes.add(prefix)
    path = directory / "prefixes.csv"
    path.write_text("".join(f"{prefix},operator {index}\n" for index, prefix in enumerate(sorted(prefixes))))
    return path, sorted(prefixes)


def table_settings(directory: Path, count: int, rng: random.Random) -> tuple[Settings, list[str]]:
    path, prefixes = write_prefix_table(directory, count, rng)
    config = directory / "creditd.toml"
    shipped = default_config_path().read_text()
    config.write_text(shipped.replace('prefixes = ["1", "2",', f'prefixes_file = "{path.name}"\nprefixes = ["1", "2",'))
    return load_settings(config), prefixes


# Cuts the usage records out of a rendered library: the baseline they are measured against.
WITHOUT_USAGE = (
    "local function append_usage(usage_key, account, request)\n",
    "local function append_usage(usage_key, account, request)\n  do return end\n",
)


class LibraryRun(msgspec.Struct):
    name: str
    render_s: float
    load_s: float
    first_call_ms: float
    charges: int
    seconds: float
    usec_per_call: float
    results: dict[str, int]
    usage_bytes_per_record: float = 0.0

    @property
    def charges_per_s(self) -> float:
        return self.charges / self.seconds


def _usec_per_call(client: redis.Redis) -> float:
    stats = client.info("commandstats")
    return float(stats.get("cmdstat_fcall", {}).get("usec_per_call", 0.0))


def answer_result(answer: bytes) -> int:
    """The result of a charge's answer in either format (lua/lib/answer.lua)."""
    return int(json.loads(answer)[0]) if answer[:1] == b"[" else leading_result(answer)


async def drive(url: str, calls: Calls, shape: Shape, duration_s: float, seed: int) -> tuple[int, dict[str, int]]:
    client = connect(url, RedisSettings())
    rng, results, charges = random.Random(seed), dict[str, int](), 0
    deadline = time.monotonic() + duration_s

    async def pipelines(worker: int) -> None:
        nonlocal charges
        scripts = [SessionScript(worker, n, shape, rng, f"r{worker}") for n in range(PIPELINE_REQUESTS)]
        serial = PIPELINE_REQUESTS
        while time.monotonic() < deadline:
            pipe, now_ms = client.pipeline(transaction=False), int(time.time() * 1000)
            for index, script in enumerate(scripts):
                request = script.next_request()
                if request is None:
                    scripts[index] = script = SessionScript(worker, serial, shape, rng, f"r{worker}")
                    serial += 1
                    request = script.next_request()
                assert request is not None
                pipe.execute_command(*fcall_words(calls.charge(request, now_ms, "loadtest", ANSWER_FORMAT)))
            for raw in await pipe.execute():
                result = pb.ResultCode.Name(pb.ResultCode.ValueType(answer_result(raw[2])))
                results[result] = results.get(result, 0) + 1
            charges += len(scripts)

    try:
        await asyncio.gather(*(pipelines(worker) for worker in range(CONCURRENT_PIPELINES)))
    finally:
        await client.aclose()
    return charges, results


def usage_bytes_per_record(client: redis.Redis, partitions: int) -> float:
    pipe = client.pipeline(transaction=False)
    for partition in range(partitions):
        pipe.memory_usage(usage_of_partition(partition), samples=0)
        pipe.xlen(usage_of_partition(partition))
    replies = pipe.execute()
    records = sum(replies[1::2])
    return sum(size or 0 for size in replies[0::2]) / records if records else 0.0


async def measure(
    name: str, settings: Settings, url: str, shape: Shape, duration_s: float, without_usage: bool = False
) -> LibraryRun:
    client = redis.Redis.from_url(url)
    calls = Calls(settings.redis.partitions)
    started = time.perf_counter()
    source = render_library(settings)
    render_s = time.perf_counter() - started
    if without_usage:
        assert WITHOUT_USAGE[0] in source
        source = source.replace(*WITHOUT_USAGE)
    client.flushall()
    started = time.perf_counter()
    client.execute_command("FUNCTION", "LOAD", "REPLACE", source)
    load_s = time.perf_counter() - started
    now_ms = int(time.time() * 1000)
    for account_id in (f"6690{n:07d}" for n in range(shape.accounts)):
        client.execute_command(
            *fcall_words(calls.create_account(NewAccount(account_id, "standard", 10**12), now_ms, "lt"))
        )
    first = SessionScript(0, 0, msgspec.structs.replace(shape, event_share=1.0), random.Random(1), "first")
    request = first.next_request()
    assert request is not None
    started = time.perf_counter()
    client.execute_command(*fcall_words(calls.charge(request, now_ms, "loadtest")))
    first_call_ms = (time.perf_counter() - started) * 1000
    client.config_resetstat()
    started = time.perf_counter()
    charges, results = await drive(url, calls, shape, duration_s, seed=7)
    seconds = time.perf_counter() - started
    usec = _usec_per_call(client)
    per_record = usage_bytes_per_record(client, settings.redis.partitions)
    client.close()
    return LibraryRun(name, render_s, load_s, first_call_ms, charges, seconds, usec, results, per_record)


def median_run(runs: list[LibraryRun]) -> LibraryRun:
    """One library's rounds as one: the median of each figure, the results summed."""
    results: dict[str, int] = {}
    for run in runs:
        for name, count in run.results.items():
            results[name] = results.get(name, 0) + count
    rates = statistics.median(run.charges_per_s for run in runs)
    return LibraryRun(
        runs[0].name,
        statistics.median(run.render_s for run in runs),
        statistics.median(run.load_s for run in runs),
        statistics.median(run.first_call_ms for run in runs),
        round(rates),
        1.0,
        statistics.median(run.usec_per_call for run in runs),
        results,
        statistics.median(run.usage_bytes_per_record for run in runs),
    )


def report_lines(runs: list[LibraryRun]) -> list[str]:
    plain, sample = runs[0], runs[1]
    header = f"{'library':30} {'render s':>8} {'load s':>7} {'1st call ms':>11} {'charges/s':>10} {'µs/call':>8}"
    lines = [f"{header} {'/plain':>7} {'/sample':>8} {'B/record':>9}"]
    for run in runs:
        lines.append(
            f"{run.name:30} {run.render_s:8.3f} {run.load_s:7.3f} {run.first_call_ms:11.1f} {run.charges_per_s:10.0f} "
            f"{run.usec_per_call:8.2f} {run.usec_per_call / plain.usec_per_call:7.3f} "
            f"{run.usec_per_call / sample.usec_per_call:8.3f} {run.usage_bytes_per_record:9.1f}"
        )
    return lines


@click.command()
@click.option("--prefixes", default=50_000, show_default=True, help="generated prefixes in the big table")
@click.option("--duration", default=3.0, show_default=True, help="seconds per library and round")
@click.option("--rounds", default=3, show_default=True, help="turns of every library (figures: medians)")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=Path("loadtest/results/rating.json"))
def main(prefixes: int, duration: float, rounds: int, json_path: Path) -> None:
    rng = random.Random(2027)
    with tempfile.TemporaryDirectory(prefix="creditd-rating-") as work:
        directory = Path(work)
        sample = load_settings(default_config_path())
        big, table = table_settings(directory, prefixes, rng)
        foreign = tuple(prefix + "1234567"[: 11 - len(prefix)] for prefix in rng.sample(table, 1000))
        big_shape = Shape(accounts=ACCOUNTS, called_parties=("66812345678", "66898765432", *foreign))
        shape = Shape(accounts=ACCOUNTS)
        variants = [
            ("plain (no destinations)", plain_settings(sample), shape, False),
            ("sample (10 prefixes)", sample, shape, False),
            (f"{prefixes} prefixes", big, big_shape, False),
            ("sample without usage records", sample, shape, True),
        ]
        rounds_of: dict[str, list[LibraryRun]] = {name: [] for name, _, _, _ in variants}
        with EmbeddedRedis(directory / "redis") as server, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            for _ in range(rounds):
                for name, settings, variant_shape, without_usage in variants:
                    run = measure(name, settings, server.url, variant_shape, duration, without_usage)
                    rounds_of[name].append(runner.run(run))
        runs = [median_run(each) for each in rounds_of.values()]
    for line in report_lines(runs):
        click.echo(line)
    for run in runs:
        click.echo(f"{run.name}: results {run.results}")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(msgspec.json.encode(runs).decode())
    click.echo(f"written: {json_path}")


if __name__ == "__main__":
    main()
