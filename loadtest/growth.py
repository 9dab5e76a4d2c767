"""How throughput, Redis time and memory grow with the number of accounts: one creditd, accounts
added in steps (created straight through the create_account function, in pipelines, for speed), and
after each step a short unary phase over all of them, the Redis time per function call of that phase
(INFO commandstats' usec_per_call of FCALL, reset before it), Redis' main thread's CPU per call over
the phase (INFO cpu; whether a fork, an AOF rewrite, ran during it) and Redis' used_memory. A phase
starts only once no AOF rewrite runs: the accounts just created often start one, and while its child
lives the first write to each page of memory copies it.

    python -m loadtest.growth --steps 1000,10000,100000,1000000 --duration 5
    python -m loadtest.growth --steps 100000 --session-steps 10000,100000 --duration 5
    python -m loadtest.growth --steps 1000,1000000 --traffic-accounts 1000 --duration 5
    python -m loadtest.growth --steps 1000,1000000 --embedded-allocator libc
    python -m loadtest.growth --steps 1000,1000000 --redis redis://127.0.0.1:6390/0

With --traffic-accounts the phases charge only the first N accounts, however many exist: the
keyspace grows while the accounts charged stay as warm as in a small one. --embedded-allocator sets
the embedded server's redis.embedded_allocator. With --redis creditd runs on that server (an
operator's own Redis or Valkey, which must be empty) instead of the embedded one.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import get_args

import click
import msgspec
import redis
import uvloop

from creditd.config.settings import EmbeddedAllocator
from creditd.devtools.ports import free_port
from creditd.store.calls import Calls, ChargeSpec, NewAccount, UnitSpec, fcall_words
from creditd.store.codes import RequestType
from creditd.store.embedded import embedded_url
from loadtest.report import write_json
from loadtest.runner import allocator_config, local_server_pid, redis_options, start_creditd, stop, wait_serving
from loadtest.traffic import Shape, run_traffic

PIPELINE = 1000
CHILD_WAIT_S = 300.0
VOICE_IN_RATING_GROUP = 4  # free incoming voice in the sample plan


class GrowthRow(msgspec.Struct):
    accounts: int
    open_sessions: int
    charges_per_s: float
    p99_ms: float
    redis_usec_per_call: float
    redis_cpu_usec_per_call: float
    forked: bool
    child_wait_s: float  # waited before the phase for an AOF rewrite to end
    used_memory_bytes: int
    bytes_per_account: int
    keys: int
    # used_memory's growth over the step's new idle sessions alone, measured before any traffic: the
    # phases between two steps add ledger entries and usage records of their own
    bytes_per_new_session: int = 0
    server: str = ""  # what ran the calls, e.g. "valkey 9.1.2, malloc libc": the allocator moves growth most


def server_description(client: redis.Redis) -> str:
    server, allocator = client.info("server"), client.info("memory")["mem_allocator"]
    version = server.get("valkey_version") or server["redis_version"]
    pid = local_server_pid(server)
    if allocator == "libc" and pid and "libjemalloc" in Path(f"/proc/{pid}/maps").read_text():
        allocator = "jemalloc (preloaded)"  # the embedded one's, by default where the system has jemalloc
    return f"{server.get('server_name') or 'redis'} {version}, malloc {allocator}"


def used_memory(client: redis.Redis) -> int:
    client.execute_command("MEMORY", "PURGE")
    return int(client.info("memory")["used_memory"])


def redis_cpu_s(client: redis.Redis) -> float:
    """Redis' main thread's CPU seconds: unlike usec_per_call, not counting the moments it waited for
    a core that the load generator and the server also wanted."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])


def fcall_figures(client: redis.Redis, cpu_before_s: float) -> tuple[float, float]:
    """FCALL's usec_per_call (INFO commandstats, since the last CONFIG RESETSTAT) and Redis' main-thread
    CPU µs per FCALL since redis_cpu_s read cpu_before_s."""
    fcalls = client.info("commandstats").get("cmdstat_fcall", {})
    cpu_usec_per_call = (redis_cpu_s(client) - cpu_before_s) * 1e6 / max(int(fcalls.get("calls", 0)), 1)
    return float(fcalls.get("usec_per_call", 0.0)), cpu_usec_per_call


def wait_for_no_child(client: redis.Redis, timeout_s: float = CHILD_WAIT_S) -> float:
    """Waits until no AOF rewrite or snapshot child runs: while one does, every write Redis makes
    copies a page first, which a phase would count as its own cost. Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        persistence = client.info("persistence")
        if not persistence["aof_rewrite_in_progress"] and not persistence["rdb_bgsave_in_progress"]:
            break
        time.sleep(0.2)
    return time.monotonic() - started


def create_accounts(client: redis.Redis, calls: Calls, first: int, last: int, balance: int) -> None:
    now_ms = int(time.time() * 1000)
    for start in range(first, last, PIPELINE):
        pipe = client.pipeline(transaction=False)
        for n in range(start, min(start + PIPELINE, last)):
            account_id = f"6690{n:07d}"
            command = calls.create_account(NewAccount(account_id, "standard", balance), now_ms, "loadtest")
            pipe.execute_command(*fcall_words(command))
        pipe.execute()


def open_idle_sessions(client: redis.Redis, calls: Calls, accounts: int, first: int, last: int) -> None:
    """Sessions that hold a free incoming-voice grant and stay open (valid an hour) while traffic runs."""
    now_ms = int(time.time() * 1000)
    for start in range(first, last, PIPELINE):
        pipe = client.pipeline(transaction=False)
        for n in range(start, min(start + PIPELINE, last)):
            account_id, session_id = f"6690{n % accounts:07d}", f"idle-{n}"
            units = (UnitSpec(VOICE_IN_RATING_GROUP),)
            request = ChargeSpec(session_id, RequestType.INITIAL, 0, account_id, "growth", units)
            pipe.execute_command(*fcall_words(calls.charge(request, now_ms, "loadtest")))
        pipe.execute()


async def measure(
    steps: list[int],
    session_steps: list[int],
    duration_s: float,
    partitions: int = 256,
    traffic_accounts: int | None = None,
    redis_url: str | None = None,
    allocator: EmbeddedAllocator = "auto",
) -> list[GrowthRow]:
    workdir = Path(tempfile.mkdtemp(prefix="creditd-growth-"))
    target, data_dir = f"127.0.0.1:{free_port()}", workdir / "data"
    config = allocator_config(workdir, allocator)
    server = start_creditd(target, *redis_options(redis_url, data_dir), "--config", str(config))
    rows, created = [], 0
    client = None
    try:
        await wait_serving(target, server, "creditd.v1.CreditControl")
        client = redis.Redis.from_url(redis_url or embedded_url(data_dir))  # the embedded one's exists now
        baseline, description = client.info("memory")["used_memory"], server_description(client)
        click.echo(f"on {description}")
        plan = [(accounts, 0) for accounts in steps] + [(steps[-1], sessions) for sessions in session_steps if sessions]
        opened = 0
        for accounts, sessions in plan:
            create_accounts(client, Calls(partitions), created, accounts, 10**9)
            before_sessions = used_memory(client)
            open_idle_sessions(client, Calls(partitions), accounts, opened, sessions)
            used, new_sessions = used_memory(client), max(sessions - opened, 0)
            created, opened = accounts, max(opened, sessions)
            waited_s = wait_for_no_child(client)
            charged = min(accounts, traffic_accounts or accounts)
            shape = Shape(accounts=charged, duration_s=duration_s, top_ups_per_s=0, small_initial_balance=10**9)
            client.config_resetstat()
            cpu_before, forks_before = redis_cpu_s(client), client.info("stats")["total_forks"]
            recorder, seconds = await run_traffic(target, "unary", shape, accounts + sessions, uuid.uuid4().hex[:8])
            usec_per_call, cpu_usec_per_call = fcall_figures(client, cpu_before)
            forked = client.info("stats")["total_forks"] > forks_before
            phase = recorder.finish(f"{accounts} accounts, {sessions} sessions", seconds)
            rows.append(
                GrowthRow(
                    accounts,
                    sessions,
                    round(phase.charges_per_s),
                    phase.latency_us["p99"] / 1000,
                    usec_per_call,
                    round(cpu_usec_per_call, 1),
                    forked,
                    round(waited_s, 1),
                    used,
                    (used - baseline) // accounts,
                    client.dbsize(),
                    (used - before_sessions) // new_sessions if new_sessions else 0,
                    description,
                )
            )
            click.echo(
                f"{accounts:>9} accounts {sessions:>8} idle sessions: {phase.charges_per_s:7.0f} charges/s, "
                f"p99 {rows[-1].p99_ms:6.1f} ms, Redis {usec_per_call:6.1f} µs per call "
                f"(CPU {cpu_usec_per_call:6.1f}{', a fork ran' if forked else ''}), used_memory {used / 2**20:8.1f} MiB"
                f"{f', {rows[-1].bytes_per_new_session} B per new session' if new_sessions else ''}"
                f"{f' (waited {waited_s:.0f} s for an AOF rewrite first)' if waited_s >= 1 else ''}"
            )
        return rows
    finally:
        if client is not None:
            client.close()
        stop(server)


@click.command()
@click.option("--steps", default="1000,10000,100000", show_default=True, help="account counts, ascending")
@click.option("--session-steps", default="", help="then, at the last account count: idle open sessions, ascending")
@click.option("--duration", default=5.0, show_default=True, help="seconds of unary traffic per step")
@click.option(
    "--traffic-accounts",
    type=click.IntRange(1),
    default=None,
    help="charge only the first N accounts (default: all): a large keyspace with warm accounts",
)
@click.option(
    "--embedded-allocator",
    "allocator",
    type=click.Choice(get_args(EmbeddedAllocator)),
    default="auto",
    show_default=True,
    help="redis.embedded_allocator of the embedded server",
)
@click.option("--redis", "redis_url", default=None, help="an empty Redis or Valkey to run on (default: embedded)")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=Path("loadtest/results/growth.json"))
def main(
    steps: str,
    session_steps: str,
    duration: float,
    traffic_accounts: int | None,
    allocator: EmbeddedAllocator,
    redis_url: str | None,
    json_path: Path,
) -> None:
    counts = sorted(int(step) for step in steps.split(","))
    sessions = sorted(int(step) for step in session_steps.split(",") if step)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        growth = measure(
            counts, sessions, duration, traffic_accounts=traffic_accounts, redis_url=redis_url, allocator=allocator
        )
        rows = runner.run(growth)
    write_json(rows, json_path)
    click.echo(f"written: {json_path}")


if __name__ == "__main__":
    main()
