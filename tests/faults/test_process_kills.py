"""Processes killed with SIGKILL under a money load on one Redis:

- one creditd process (a child process) is killed and restarted five times while another (in this
  process) keeps serving; each has its own clients, which retry with the same ids until answered, on
  shared accounts;
- Redis itself is killed and restarted from its append-only file, twice, while both serve with
  `redis.durability = "fsync"` on a Redis with `appendfsync always` (docs/operating.md), and while a
  writer keeps the disk busy (tests/busy_disk.py). With durability "written" this half loses answered
  top-ups: Redis, under `appendfsync everysec`, holds its AOF write back while a slow fsync runs and
  answers meanwhile (33 top-ups answered and lost in one run), so this half proves the setting that
  promises it.

Afterwards both loads' books balance together: every balance is the start plus every acknowledged
top-up minus what every acknowledged SMS charged, every acknowledged request replays its first answer,
and the audit is clean. (The embedded Redis killed together with creditd is tests/test_crash.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import msgspec
import pytest

from creditd.config.settings import Settings
from creditd.devtools.local_topology import LocalServer
from creditd.devtools.ports import free_port
from loadtest.runner import FSYNC_WAIT_TIMEOUT_MS, durability_config
from tests.busy_disk import busy_disk
from tests.harness import Harness, library_client, started_server
from tests.money_load import MoneyLoad
from tests.processes import CHANNEL_OPTIONS, kill_hard, start_server, stop, wait_serving

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]
ACCOUNTS = [f"66857{n:06d}" for n in range(12)]
START_BALANCE = 10_000_000  # two loads of up to 20 000 requests each never exhaust an account
WORKERS = 4
MAX_REQUESTS = 20_000
CREDITD_KILLS = 5
REDIS_KILLS = 2
BETWEEN_KILLS_S = 0.3


class Victim:
    """A creditd child process on a fixed port, killed and started again."""

    def __init__(self, directory: Path, redis_url: str, config: Path) -> None:
        self.directory, self.redis_url, self.config = directory, redis_url, config
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        return start_server(self.directory / "data", self.port, "--redis", self.redis_url, "--config", str(self.config))

    async def wait_serving(self) -> None:
        await asyncio.to_thread(wait_serving, self.port, self.process)

    async def kill_and_restart(self) -> None:
        kill_hard(self.process.pid)
        self.process.wait()
        self.process = self._start()
        await self.wait_serving()

    def stop(self) -> None:
        stop(self.process, self.directory / "data")


def _fsync_durable(settings: Settings) -> Settings:
    """Durability "fsync", waiting as long for WAITAOF as the victim's config (loadtest's figure)."""
    redis_settings = msgspec.structs.replace(settings.redis, durability="fsync", wait_timeout_ms=FSYNC_WAIT_TIMEOUT_MS)
    return msgspec.structs.replace(settings, redis=redis_settings)


@contextlib.asynccontextmanager
async def _two_servers(
    directory: Path, settings: Settings, appendfsync: str = "everysec"
) -> AsyncIterator[tuple[LocalServer, Harness, Victim]]:
    """A Redis, a creditd in this process (the survivor) and one in a child process (the victim),
    both with the survivor's redis.durability."""
    with (
        LocalServer(directory / "redis", appendfsync) as redis_server,
        library_client(redis_server.url, settings) as client,
    ):
        config = durability_config(directory, settings.redis.durability)
        victim = Victim(directory / "victim", redis_server.url, config)
        try:
            await victim.wait_serving()
            async with started_server(settings, redis_server.url, client) as harness:
                yield redis_server, harness, victim
        finally:
            victim.stop()


def _combined_balances(loads: list[MoneyLoad]) -> dict[str, int]:
    balances = dict.fromkeys(ACCOUNTS, START_BALANCE)
    for load in loads:
        for account_id, balance in load.expected_balances().items():
            balances[account_id] += balance - START_BALANCE
    return balances


async def _assert_books(harness: Harness, loads: list[MoneyLoad]) -> None:
    for load in loads:
        assert load.unexpected == [], load.unexpected
        assert load.acknowledged_during_load > 0
        assert await load.replay_mismatches() == []
        print(f"{load.prefix}: acknowledged {len(load.acknowledged)}, retryable errors {dict(load.errors)}")
    balances = {account_id: (await harness.get(account_id)).balance for account_id in ACCOUNTS}
    assert balances == _combined_balances(loads)
    harness.assert_audit_clean()


async def _under_two_loads(harness: Harness, victim: Victim, disturb: Callable[[], Awaitable[None]]) -> list[MoneyLoad]:
    for account_id in ACCOUNTS:
        await harness.create_account(account_id, balance=START_BALANCE)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{victim.port}", options=CHANNEL_OPTIONS) as channel:
        loads = [
            MoneyLoad(harness.channel, ACCOUNTS, START_BALANCE, MAX_REQUESTS, prefix="survivor"),
            MoneyLoad(channel, ACCOUNTS, START_BALANCE, MAX_REQUESTS, prefix="victim"),
        ]
        stopping = asyncio.Event()
        running = [asyncio.create_task(load.run(stopping, WORKERS)) for load in loads]
        await asyncio.sleep(BETWEEN_KILLS_S)
        await disturb()
        await asyncio.sleep(BETWEEN_KILLS_S)
        stopping.set()
        await asyncio.gather(*running)
        await asyncio.gather(*(load.settle() for load in loads))
        await _assert_books(harness, loads)
    return loads


async def test_creditd_killed_five_times_while_another_serves(tmp_path: Path, settings: Settings) -> None:
    async with _two_servers(tmp_path, settings) as (_, harness, victim):

        async def kill_loop() -> None:
            for _ in range(CREDITD_KILLS):
                await asyncio.sleep(BETWEEN_KILLS_S)
                await victim.kill_and_restart()

        loads = await _under_two_loads(harness, victim, kill_loop)
        assert loads[1].errors["UNAVAILABLE"] > 0  # the kills were felt


def _run_id(redis_server: LocalServer) -> str:
    with redis_server.admin(redis_server.server) as admin:
        return str(admin.info("server")["run_id"])


async def test_redis_killed_and_restarted_from_its_append_only_file(tmp_path: Path, settings: Settings) -> None:
    durable = _fsync_durable(settings)
    async with _two_servers(tmp_path, durable, "always") as (redis_server, harness, victim):
        run_ids = [_run_id(redis_server)]

        async def kill_redis() -> None:
            for _ in range(REDIS_KILLS):
                await asyncio.sleep(BETWEEN_KILLS_S)
                redis_server.server.kill()
                redis_server.server.start()
                await asyncio.to_thread(redis_server.wait_ready)
                run_ids.append(_run_id(redis_server))

        with busy_disk(tmp_path):
            await _under_two_loads(harness, victim, kill_redis)
        assert len(set(run_ids)) == REDIS_KILLS + 1  # each kill gave a new Redis process
