"""Failures under load, on real topologies started from the embedded binary, each ending with the
books balanced (tests/money_load.py): every acknowledged top-up and charge is there exactly once,
resending any of them replays it, and the audit is clean.

- Cluster, 3 primaries with a replica each: a primary is killed (SIGKILL) mid-load; its replica
  takes over; the killed node comes back as a replica. The server waits for one replica per write
  (wait_replicas 1), which is what makes "no acknowledged write lost" hold through the kill.
- Cluster: a slot holding loaded accounts is migrated to another primary mid-load, with redirects
  followed by the client (wait_replicas 0) and answered UNAVAILABLE then retried (wait_replicas 1).
- Sentinel, a primary, a replica and 3 sentinels: the primary is killed mid-load; health goes
  NOT_SERVING and back to SERVING, in-flight requests fail UNAVAILABLE (no hang), and the server
  follows the new primary by itself. Again with the new primary frozen (SIGSTOP) for 3 s just after
  the old one restarts, which makes the sentinels fail over a second time, back to the old primary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from grpc_health.v1 import health_pb2
from redis.crc import key_slot

from creditd.config.settings import Settings
from creditd.devtools.local_topology import LocalCluster, LocalSentinels
from tests.harness import Harness, library_client, started_server, watch_health
from tests.money_load import MoneyLoad

REJOIN_TIMEOUT_S = 90.0
pytestmark = pytest.mark.asyncio
ACCOUNTS = [f"66844{n:06d}" for n in range(24)]
START_BALANCE = 100_000
WORKERS = 8
MAX_REQUESTS = 20_000
LOAD_BEFORE_S = 1.0
LOAD_AFTER_S = 1.5
RECOVERY_TIMEOUT_S = 30.0
# From the old primary's restart to freezing the new one (the sentinels must have seen the old one
# answer: at 0.3 s they had not), and for how long (past down_after_ms, 1 s).
SECOND_FAILOVER_GAP_S = 1.5
NEW_PRIMARY_FROZEN_S = 3.0


def _tuned(settings: Settings, wait_replicas: int) -> Settings:
    redis_settings = msgspec.structs.replace(
        settings.redis, wait_replicas=wait_replicas, wait_timeout_ms=1000, health_check_interval_s=0.2
    )
    return msgspec.structs.replace(settings, redis=redis_settings)


async def _run_under_load(harness: Harness, disturb: Callable[[], Awaitable[None]]) -> MoneyLoad:
    for account_id in ACCOUNTS:
        await harness.create_account(account_id, balance=START_BALANCE)
    load = MoneyLoad(harness.channel, ACCOUNTS, START_BALANCE, MAX_REQUESTS)
    stopping = asyncio.Event()
    running = asyncio.create_task(load.run(stopping, WORKERS))
    await asyncio.sleep(LOAD_BEFORE_S)
    await disturb()
    await asyncio.sleep(LOAD_AFTER_S)
    stopping.set()
    await running
    await load.settle()
    return load


async def _until(condition: Callable[[], bool], what: str) -> float:
    """Polls `condition` in a thread (it talks to Redis synchronously); seconds it took."""
    started = time.monotonic()
    while not await asyncio.to_thread(condition):
        assert time.monotonic() - started < RECOVERY_TIMEOUT_S, f"{what}: not within {RECOVERY_TIMEOUT_S} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(Path(tmp_path_factory.mktemp("cluster")), primaries=3, replicas=1) as started:
        yield started


def _slot_of(harness: Harness, account_id: str) -> int:
    return key_slot(harness.server_keys().account(account_id).encode())


async def test_cluster_primary_killed_mid_load(cluster: LocalCluster, settings: Settings) -> None:
    tuned = _tuned(settings, wait_replicas=1)
    with library_client(cluster.url, tuned) as client:
        async with started_server(tuned, cluster.url, client) as harness:

            async def kill_and_recover() -> None:
                victim.kill()
                took_s = await _until(lambda: _slot_served_by_another(cluster, slot, victim), "replica promoted")
                print(f"replica promoted {took_s:.2f} s after the kill")
                victim.start()  # back from its own AOF and nodes.conf, as a replica of its successor
                await asyncio.to_thread(cluster.wait_healthy)
                # Not asserted: who owns the slot once the victim is back. With a 1 s node timeout a
                # loaded machine can fail over a second time, back to the victim (CI saw it once);
                # the books must balance either way.

            slot = _slot_of(harness, ACCOUNTS[0])
            victim = cluster.owner_of(slot)
            load = await _run_under_load(harness, kill_and_recover)
            await load.assert_books_balance(harness)


def _slot_served_by_another(cluster: LocalCluster, slot: int, victim: object) -> bool:
    """The killed node's replica owns `slot` now, in the view of a running primary."""
    if len(cluster.primaries()) < cluster.primary_count:
        return False
    try:
        return cluster.owner_of(slot) is not victim
    except (LookupError, StopIteration):
        return False


@pytest.mark.parametrize("wait_replicas", [0, 1])
async def test_cluster_slot_migrated_mid_load(cluster: LocalCluster, settings: Settings, wait_replicas: int) -> None:
    tuned = _tuned(settings, wait_replicas=wait_replicas)
    with library_client(cluster.url, tuned) as client:
        async with started_server(tuned, cluster.url, client) as harness:
            slot = _slot_of(harness, ACCOUNTS[0])
            source = cluster.owner_of(slot)
            target = next(server for server in cluster.primaries() if server is not source)
            moved: list[int] = []

            async def migrate() -> None:
                moved.append(await asyncio.to_thread(cluster.migrate_slot, slot, target))

            load = await _run_under_load(harness, migrate)
            assert cluster.owner_of(slot) is target
            assert moved[0] > 0  # the slot held keys of a loaded account while they moved
            await load.assert_books_balance(harness)


async def _sentinel_primary_killed(
    tmp_path: Path, settings: Settings, after_restart: Callable[[LocalSentinels], Awaitable[None]] | None = None
) -> None:
    tuned = _tuned(settings, wait_replicas=1)
    with LocalSentinels(tmp_path / "sentinel", replicas=1) as sentinels, library_client(sentinels.url, tuned) as client:
        async with started_server(tuned, sentinels.url, client) as harness:
            seen: list[tuple[float, int]] = []
            watching = asyncio.Event()
            watched = asyncio.create_task(watch_health(harness, seen, watching))
            old_primary = sentinels.primary()

            async def kill_and_recover() -> None:
                old_primary.kill()
                took_s = await _until(lambda: sentinels.primary() is not old_primary, "sentinels name a new primary")
                print(f"new primary named {took_s:.2f} s after the kill")
                # It comes back, and the sentinels make it a replica of the new primary: Sentinel converts
                # a restarted old primary only after its own delay, then the new primary forks a full sync
                # (16 s on an idle machine, past 30 s once under the whole suite's load). Or, as happened
                # once under the suite's load, the new primary misses pings while promoted and a second
                # failover names the old one again: the books must balance either way.
                old_primary.start()
                if after_restart is not None:
                    await after_restart(sentinels)
                await asyncio.to_thread(sentinels.wait_replicas_synced, REJOIN_TIMEOUT_S)
                print(f"primary at the end: the {'old' if sentinels.primary() is old_primary else 'new'} one")

            load = await _run_under_load(harness, kill_and_recover)
            watching.set()
            await watched
            statuses = [status for _, status in seen]
            assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses
            assert statuses[-1] == health_pb2.HealthCheckResponse.SERVING
            assert set(load.errors) <= {"UNAVAILABLE"} and load.errors["UNAVAILABLE"] > 0
            await load.assert_books_balance(harness)


async def test_sentinel_primary_killed_mid_load(tmp_path: Path, settings: Settings) -> None:
    await _sentinel_primary_killed(tmp_path, settings)


async def test_sentinel_new_primary_frozen_after_the_failover(tmp_path: Path, settings: Settings) -> None:
    async def freeze_the_new_primary(sentinels: LocalSentinels) -> None:
        # Once the sentinels have seen the old primary answer again, the new one stops answering for
        # longer than down_after_ms: a second failover (here every time; once in the suite on its own)
        # names the old primary again, with its data from before the kill, and the new one resyncs
        # from it. A write on the new one was acknowledged only once WAIT found it on a replica, the
        # old primary being the only one: none is lost.
        await asyncio.sleep(SECOND_FAILOVER_GAP_S)
        new_primary = sentinels.primary()
        new_primary.pause()
        await asyncio.sleep(NEW_PRIMARY_FROZEN_S)
        new_primary.resume()

    await _sentinel_primary_killed(tmp_path, settings, freeze_the_new_primary)
