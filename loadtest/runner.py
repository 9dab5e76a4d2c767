"""One load-test run: start creditd (or use a running one), play each phase, measure the baselines
in the same run, measure Redis memory per session and per account, audit, report ratios."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import grpc
import msgspec
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from creditd import collector
from creditd.config.settings import RedisSettings
from creditd.core.audit import Auditor
from creditd.devtools.ports import free_port
from creditd.resources import default_config_path
from creditd.store.calls import Calls, ChargeSpec, NewAccount, UnitSpec, fcall_words
from creditd.store.codes import RequestType
from creditd.store.connection import connect_sync
from creditd.store.embedded import embedded_url
from creditd.store.replies import decode_reply
from creditd.v1 import creditd_pb2_grpc as pb_grpc
from loadtest.cpu import CpuMeter, reference_work_ms
from loadtest.redis_floor import measure_redis_floor
from loadtest.report import PhaseResult, Report, ratio
from loadtest.server_latency import cumulative_counts, phase_latency
from loadtest.traffic import Shape, create_accounts, run_traffic

START_TIMEOUT_S = 30.0
MEMORY_SAMPLE = 2000
VOICE_IN_RATING_GROUP = 4
# Called with the number of requests just finished (a progress bar's update).
Progress = Callable[[int], object]


class Options(msgspec.Struct, frozen=True):
    target: str = ""
    redis_url: str = ""
    modes: tuple[str, ...] = ("unary", "batch")
    shape: Shape = Shape()
    batch_size: int = 200
    workers: int = 1
    baselines: bool = True
    # Each phase this many times, interleaved; the report keeps medians (the machine is shared).
    rounds: int = 1
    partitions: int = 256
    seed: int = 1
    # redis.durability of the creditd this run starts: "written" (the default) or "fsync".
    durability: str = "written"


def start_creditd(listen: str, *options: str, metrics_listen: str = "") -> subprocess.Popen[bytes]:
    """`creditd serve` on `listen`, quiet, with /metrics on `metrics_listen` (none by default) and
    the given extra options."""
    command = [sys.executable, "-m", "creditd", "serve", "--listen", listen, "--metrics-listen", metrics_listen]
    return subprocess.Popen([*command, "--log-level", "WARNING", *options], stdin=subprocess.DEVNULL)


async def wait_serving(target: str, process: subprocess.Popen[bytes] | None, service: str = "") -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"server at {target} exited with {process.returncode}")
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return  # the echo server has no health service: it answers, so it is up
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing serving at {target} within {START_TIMEOUT_S} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Processes(msgspec.Struct, frozen=True):
    """The server's and Redis' process ids, when this run started them (for CPU per RPC), and the
    server's /metrics, one per worker (for its own latency)."""

    server: int = 0
    redis: int = 0
    metrics_urls: tuple[str, ...] = ()


async def phase(
    name: str, target: str, mode: str, shape: Shape, seed: int, progress: Progress, processes: Processes | None = None
) -> PhaseResult:
    processes = processes or Processes()
    method = "ChargeBatch" if mode == "batch" else "Charge"
    urls = processes.metrics_urls
    before = await asyncio.to_thread(cumulative_counts, urls, method) if urls else {}
    reference_ms = reference_work_ms()
    meter = CpuMeter([processes.server], [processes.redis] if processes.redis else []) if processes.server else None
    recorder, seconds = await run_traffic(target, mode, shape, seed, uuid.uuid4().hex[:8], progress)
    result = recorder.finish(name, seconds)
    result.reference_work_ms = reference_ms
    if urls:
        result.server_latency = phase_latency(before, await asyncio.to_thread(cumulative_counts, urls, method))
    if meter is not None and result.rpcs:
        # The server's tree holds its embedded Redis: CpuMeter leaves it out there and counts it once, as redis.
        # Per RPC answered, top-ups with the rest: each side of a comparison plays the same ones.
        cores, per_rpc_us = meter.stop(), seconds / result.answered * 1_000_000
        result.cpu_us_per_rpc = {"load generator": round(cores.load_generator * per_rpc_us, 1)}
        result.cpu_us_per_rpc["server"] = round(cores.creditd * per_rpc_us, 1)
        if processes.redis:
            result.cpu_us_per_rpc["redis"] = round(cores.redis * per_rpc_us, 1)
    return result


def start_echo(listen: str, redis_url: str = "") -> subprocess.Popen[bytes]:
    """The echo server (loadtest/echo.py) on `listen`; with redis_url, one round trip to it a Charge."""
    command = [sys.executable, "-m", "loadtest.echo", "--listen", listen]
    return subprocess.Popen([*command, "--redis-url", redis_url] if redis_url else command, stdin=subprocess.DEVNULL)


async def echo_phase(shape: Shape, seed: int, progress: Progress, name: str) -> PhaseResult:
    target = f"127.0.0.1:{free_port()}"
    echo = start_echo(target)
    try:
        await wait_serving(target, echo)
        return await phase(name, target, "unary", shape, seed, progress, Processes(server=echo.pid))
    finally:
        stop(echo)


def measure_memory(url: str, partitions: int) -> dict[str, int]:
    """Redis bytes, by MEMORY USAGE, per idle account (its packed string; its one-entry ledger apart)
    and per open session (its packed string, its entry in the account's sessions set and in the
    deadline set),
    averaged over MEMORY_SAMPLE of each."""
    client, calls = redis.Redis.from_url(url), Calls(partitions)
    keys = calls.keys
    try:
        now_ms = int(time.time() * 1000)
        accounts = [f"6698{n:07d}" for n in range(MEMORY_SAMPLE)]
        pipe = client.pipeline(transaction=False)
        for account_id in accounts:
            command = calls.create_account(NewAccount(account_id, "standard", 1000), now_ms, "loadtest")
            pipe.execute_command(*fcall_words(command))
        pipe.execute()
        account_bytes = _usage(client, [keys.account(a) for a in accounts])
        ledger_bytes = _usage(client, [keys.ledger(a) for a in accounts])
        deadline_keys = [keys.deadlines(a) for a in accounts]
        deadlines_before = _usage(client, sorted(set(deadline_keys)))
        assert _charge_all(client, calls, accounts, RequestType.INITIAL, now_ms) == len(accounts)
        session_bytes = _usage(client, [keys.session(a, "memory", f"m-{a}") for a in accounts])
        session_bytes += _usage(client, [keys.sessions(a) for a in accounts])
        session_bytes += _usage(client, sorted(set(deadline_keys))) - deadlines_before
        _charge_all(client, calls, accounts, RequestType.TERMINATE, now_ms)
        return {
            "redis bytes per idle account": account_bytes // MEMORY_SAMPLE,
            "redis bytes per one-entry ledger": ledger_bytes // MEMORY_SAMPLE,
            "redis bytes per open session": session_bytes // MEMORY_SAMPLE,
        }
    finally:
        client.close()


def _usage(client: redis.Redis, key_list: list[str]) -> int:
    pipe = client.pipeline(transaction=False)
    for key in key_list:
        pipe.memory_usage(key, samples=0)
    return sum(value or 0 for value in pipe.execute())


def _charge_all(client: redis.Redis, calls: Calls, accounts: list[str], kind: RequestType, now_ms: int) -> int:
    pipe = client.pipeline(transaction=False)
    number = 0 if kind == RequestType.INITIAL else 1
    for account_id in accounts:
        request = ChargeSpec(f"m-{account_id}", kind, number, account_id, "memory", (UnitSpec(VOICE_IN_RATING_GROUP),))
        pipe.execute_command(*fcall_words(calls.charge(request, now_ms, "loadtest")))
    return sum(1 for reply in pipe.execute() if decode_reply(reply).body.startswith(b"[2001,"))


def audit(url: str, partitions: int) -> tuple[list[str], dict[str, int]]:
    client = connect_sync(url, RedisSettings())  # any topology
    try:
        report = Auditor(client, partitions).run()
    finally:
        client.close()
    violations = list(report.violations)
    if report.total_reserved:
        violations.append(f"{report.total_reserved} left reserved after every session ended")
    summary = {
        "accounts": report.accounts,
        "open_sessions": report.open_sessions,
        "total_balance": report.total_balance,
        "total_reserved": report.total_reserved,
    }
    return violations, summary


def ratios(phases: dict[str, PhaseResult]) -> dict[str, float]:
    echo, unary = phases.get("echo"), phases.get("unary")
    batch, floor = phases.get("batch"), phases.get("floor")
    found: dict[str, float] = {}
    if echo and unary:
        found["unary Charge / echo unary (target >= 0.7)"] = ratio(unary.rpcs_per_s, echo.rpcs_per_s)
    if echo and batch:
        found["batch charges / echo unary (target >= 5)"] = ratio(batch.charges_per_s, echo.rpcs_per_s)
    found.update(cpu_ratios(phases))
    if floor and unary:
        found["unary Charge / redis floor"] = ratio(unary.charges_per_s, floor.charges_per_s)
    if floor and batch:
        found["batch charges / redis floor"] = ratio(batch.charges_per_s, floor.charges_per_s)
    if "paced" in phases:
        found["p99 ms of unary at half its maximum (target <= 10)"] = phases["paced"].latency_us["p99"] / 1000
        if phases["paced"].server_latency:
            found["of those, handled by creditd within 10 ms"] = phases["paced"].server_latency["handled within 10 ms"]
    if "echo paced" in phases:
        found["p99 ms of echo at that rate (the harness' own)"] = phases["echo paced"].latency_us["p99"] / 1000
    return found


def _server_cpu_ratio(creditd: PhaseResult | None, echo: PhaseResult | None) -> float | None:
    """The serving process' CPU per RPC in a creditd phase over the echo server's in its own."""
    if creditd and echo and creditd.cpu_us_per_rpc and echo.cpu_us_per_rpc:
        return ratio(creditd.cpu_us_per_rpc["server"], echo.cpu_us_per_rpc["server"])
    return None


def cpu_ratios(phases: dict[str, PhaseResult]) -> dict[str, float]:
    """From /proc, where the run started the servers: issue #36's two CPU targets (the serving
    process' CPU per unary Charge over the echo server's per RPC, both at their most; ChargeBatch's
    server and Redis CPU per charge), and the first again at half load, where a Redis call rarely
    shares its pipeline (and its system calls) with another (no target)."""
    found: dict[str, float] = {}
    at_most = _server_cpu_ratio(phases.get("unary"), phases.get("echo"))
    if at_most is not None:
        found["server CPU per unary Charge / echo's per RPC (target <= 1.25)"] = at_most
    batch = phases.get("batch")
    if batch and batch.charges and batch.cpu_us_per_rpc.get("redis"):
        cpu_us = (batch.cpu_us_per_rpc["server"] + batch.cpu_us_per_rpc["redis"]) * batch.answered
        per_charge = cpu_us / (batch.charges + batch.top_ups)  # a top-up counted as one charge
        found["ChargeBatch server + Redis CPU µs per charge (target <= 120)"] = round(per_charge, 1)
    at_half = _server_cpu_ratio(phases.get("paced"), phases.get("echo paced"))
    if at_half is not None:
        found["server CPU per unary Charge / echo's per RPC, at half load"] = at_half
    return found


async def _one_round(
    options: Options, target: str, url: str, processes: Processes, progress: Progress
) -> dict[str, PhaseResult]:
    """Each phase once: the baselines beside creditd's, so that a round's ratios are of one moment."""
    phases: dict[str, PhaseResult] = {}
    shape = options.shape
    if options.baselines:
        phases["echo"] = await echo_phase(shape, options.seed, progress, "echo unary (gRPC floor)")
    if "unary" in options.modes:
        name = "creditd unary Charge"
        phases["unary"] = await phase(name, target, "unary", shape, options.seed, progress, processes)
        paced = msgspec.structs.replace(shape, rate_per_s=phases["unary"].rpcs_per_s / 2)
        name = "creditd unary at half max"
        phases["paced"] = await phase(name, target, "unary", paced, options.seed, progress, processes)
        if options.baselines:  # what the load generator and gRPC alone take at that rate
            phases["echo paced"] = await echo_phase(paced, options.seed, progress, "echo unary at that rate")
    if "batch" in options.modes:
        batched = msgspec.structs.replace(shape, sessions_per_gateway=options.batch_size)
        name = f"creditd ChargeBatch ({options.batch_size})"
        phases["batch"] = await phase(name, target, "batch", batched, options.seed, progress, processes)
    if options.baselines and url:
        recorder, seconds = await measure_redis_floor(url, options.partitions, shape.duration_s)
        phases["floor"] = recorder.finish("raw pipelined FCALL (Redis floor)", seconds)
    return phases


def median_phase(played: list[PhaseResult]) -> PhaseResult:
    """The round whose throughput is the median (the lower of the two middle ones for an even count):
    a real run's figures, latencies included, not a blend."""
    return sorted(played, key=lambda result: result.rpcs_per_s)[(len(played) - 1) // 2]


def median_ratios(per_round: list[dict[str, float]]) -> dict[str, float]:
    """Each ratio's median over the rounds; a ratio is taken within its round, where the machine's
    load was the same for both sides."""
    return {name: round(statistics.median(found[name] for found in per_round), 3) for name in per_round[0]}


# redis.wait_timeout_ms for durability "fsync": the recommendation of docs/operating.md.
FSYNC_WAIT_TIMEOUT_MS = 1000


def shipped_config_with(directory: Path, changes: dict[str, str]) -> Path:
    """The shipped config with each of its `changes` keys (a setting's text as shipped) replaced by
    the value, written into directory."""
    text = default_config_path().read_text()
    for shipped, changed in changes.items():
        assert shipped in text, f"the shipped config has no {shipped!r}"
        text = text.replace(shipped, changed, 1)
    path = directory / "creditd.toml"
    path.write_text(text)
    return path


def allocator_config(directory: Path, allocator: str) -> Path:
    """The shipped config with redis.embedded_allocator set, written into directory."""
    return shipped_config_with(directory, {'embedded_allocator = "auto"': f'embedded_allocator = "{allocator}"'})


def durability_config(directory: Path, durability: str) -> Path:
    """The shipped config with redis.durability set, written into directory."""
    changes = {'durability = "written"': f'durability = "{durability}"'}
    if durability == "fsync":  # an fsync under load takes longer than the replicas' 100 ms default
        changes["wait_timeout_ms = 100 "] = f"wait_timeout_ms = {FSYNC_WAIT_TIMEOUT_MS} "
    return shipped_config_with(directory, changes)


def redis_options(redis_url: str | None, data_dir: Path) -> tuple[str, ...]:
    """`creditd serve`'s options for a run's Redis: the operator's at redis_url, refused unless empty
    (a run's accounts, totals and audit must be its own), or else an embedded one in data_dir."""
    if not redis_url:
        return ("--data-dir", str(data_dir))
    with redis.Redis.from_url(redis_url) as client:
        if keys := client.dbsize():  # the URL is not echoed: it may hold a password
            raise click.UsageError(f"--redis: the server is not empty ({keys} keys); a run needs an empty one")
    return ("--redis", redis_url)


def embedded_server_pid(data_dir: Path) -> int:
    """The process id of the embedded server a `creditd serve --data-dir data_dir` started."""
    with redis.Redis.from_url(embedded_url(data_dir)) as client:
        return local_server_pid(client.info("server"))


def local_server_pid(server_info: dict[str, Any]) -> int:
    """The pid of the Redis or Valkey server whose INFO server this is if it runs on this machine,
    else 0."""
    pid = int(server_info["process_id"])
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:  # no such process here: the server runs elsewhere
        return 0
    return pid if b"-server" in command else 0


async def run(options: Options, progress: Progress) -> Report:
    """One run: on a creditd this run starts (on its own embedded Redis, or on options.redis_url, an
    empty server of the operator's) or on options.target, one already running."""
    server, workdir = None, tempfile.mkdtemp(prefix="creditd-loadtest-")
    target, url, metrics_urls = options.target, options.redis_url, ()
    data_dir = Path(workdir) / "data"
    try:
        if not target:
            target = f"127.0.0.1:{free_port()}"
            # one worker's /metrics (several would take consecutive ports, which may not all be free)
            metrics_listen = f"127.0.0.1:{free_port()}" if options.workers == 1 else ""
            metrics_urls = (f"http://{metrics_listen}/metrics",) if metrics_listen else ()
            config = durability_config(Path(workdir), options.durability)
            server = start_creditd(
                target,
                *(*redis_options(url, data_dir), "--workers", str(options.workers), "--config", str(config)),
                metrics_listen=metrics_listen,
            )
        await wait_serving(target, server, "creditd.v1.CreditControl")
        if server is not None and not url:
            url = embedded_url(data_dir)
        async with grpc.aio.insecure_channel(target) as channel:
            await create_accounts(pb_grpc.AccountsStub(channel), options.shape)
        # The generator's own full collections (25-45 ms each here) would be counted as the server's latency.
        collector.freeze_after_start_up()
        processes = Processes()
        if server is not None:
            with redis.Redis.from_url(url) as client:
                processes = Processes(server.pid, local_server_pid(client.info("server")), metrics_urls)
        rounds = [await _one_round(options, target, url, processes, progress) for _ in range(options.rounds)]
        phases = {key: median_phase([played[key] for played in rounds]) for key in rounds[0]}
        shape = options.shape
        memory = measure_memory(url, options.partitions) if url else {}
        violations, summary = audit(url, options.partitions) if url else ([], {})  # not audited
        settings = {
            "shape": msgspec.to_builtins(shape),
            "batch_size": options.batch_size,
            "workers": options.workers,
            "target": target,
            "rounds": options.rounds,
            "durability": options.durability,
        }
        per_round = [ratios(played) for played in rounds]
        settings["ratios of each round"] = per_round
        references = [played.reference_work_ms for one in rounds for played in one.values() if played.reference_work_ms]
        settings["reference work ms of each phase"] = references
        return Report(settings, list(phases.values()), median_ratios(per_round), memory, violations, summary)
    finally:
        if server is not None:
            stop(server)
