"""Redis Cluster specifics, on a real 3-primary cluster started from the embedded binary: every
function call's keys share one slot (for every function, over random ids, and by the partition count
any deployment may choose); calls are routed from their own keys, not by asking the server
(COMMAND GETKEYS stays at zero); a primary that lost the library gets it back from the health
check. The server here waits for one replica per write (wait_replicas 1), through per-node WAITs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
import redis
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis.crc import key_slot

from creditd.config.settings import Settings
from creditd.devtools.local_topology import LocalCluster
from creditd.resources import lua_directory
from creditd.store.calls import Calls
from creditd.store.connection import connect_sync, on_every_primary
from creditd.store.library import library_version, render_library
from creditd.store.replies import decode_reply
from tests.harness import Harness, started_server
from tests.test_lua_functions import KEYS_OF, Ids

IDENTIFIER = st.text(st.characters(codec="ascii", exclude_characters="\x00 {}"), min_size=1, max_size=40)


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    partitions=st.sampled_from([1, 7, 256, 16384]),
    ids=st.builds(
        Ids,
        account=st.from_regex(r"\A[0-9]{6,15}\Z"),
        gateway=IDENTIFIER,
        session=IDENTIFIER,
        topup_key=IDENTIFIER,
        purchase_key=IDENTIFIER,
        partition=st.integers(0, 255),
    ),
)
def test_every_function_call_keys_share_one_slot(partitions: int, ids: Ids) -> None:
    shipped = {path.stem for path in (lua_directory() / "functions").glob("*.lua")}
    assert shipped - {"library_version"} == set(KEYS_OF)  # every function with keys is checked here
    calls = Calls(partitions)
    for function, keys_of in KEYS_OF.items():
        slots = {key_slot(key.encode()) for key in keys_of(calls, ids)}
        assert len(slots) == 1, f"{function}: keys in slots {slots}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(Path(tmp_path_factory.mktemp("cluster")), primaries=3, replicas=1) as started:
        yield started


@pytest.fixture
def cluster_client(cluster: LocalCluster, settings: Settings) -> Iterator[redis.cluster.RedisCluster]:
    client = connect_sync(cluster.url, settings.redis)
    client.flushall()
    client.function_load(render_library(settings), replace=True)
    try:
        yield client
    finally:
        client.close()


@pytest_asyncio.fixture
async def on_cluster(
    cluster: LocalCluster, cluster_client: redis.cluster.RedisCluster, settings: Settings
) -> AsyncIterator[Harness]:
    waiting = msgspec.structs.replace(settings.redis, wait_replicas=1, wait_timeout_ms=2000)
    async with started_server(msgspec.structs.replace(settings, redis=waiting), cluster.url, cluster_client) as harness:
        yield harness
    harness.assert_audit_clean()


def _getkeys_calls(cluster: LocalCluster) -> int:
    total = 0
    for server in cluster.primaries():
        with cluster.admin(server) as admin:
            stats = admin.info("commandstats")
        total += int(stats.get("cmdstat_command|getkeys", {}).get("calls", 0))
    return total


@pytest.mark.asyncio
async def test_calls_spread_over_every_primary_without_asking_for_keys(
    on_cluster: Harness, cluster: LocalCluster
) -> None:
    before = _getkeys_calls(cluster)
    accounts = [f"66833{n:06d}" for n in range(60)]
    for account_id in accounts:
        await on_cluster.create_account(account_id, balance=1000)
        await on_cluster.top_up(account_id, 5, f"t-{account_id}")
    owners = {cluster.owner_of(key_slot(on_cluster.server_keys().account(a).encode())).port for a in accounts}
    assert len(owners) == 3  # the accounts landed on every primary
    assert [(await on_cluster.get(a)).balance for a in accounts] == [1005] * len(accounts)
    assert _getkeys_calls(cluster) == before


@pytest.mark.asyncio
async def test_a_primary_without_the_library_gets_it_back_from_the_health_check(
    on_cluster: Harness, cluster: LocalCluster, settings: Settings
) -> None:
    victim = cluster.primaries()[1]
    with cluster.admin(victim) as admin:
        admin.function_flush()
        assert admin.function_list() == []
    assert await on_cluster.server.redis_health.check_once()
    wanted = library_version(render_library(settings))
    for reply in await on_every_primary(on_cluster.server.redis, "FCALL_RO", "library_version", 0):
        assert decode_reply(reply).body.decode() == wanted
    await on_cluster.create_account("66834000001", balance=10)  # and calls work on every node again
    for n in range(30):
        assert (await on_cluster.top_up("66834000001", 1, f"k{n}")).account.balance == 11 + n
