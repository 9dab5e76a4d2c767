"""Shared fixtures: one real Redis topology for the whole run (flushed before every test; the
function library survives FLUSHALL), and a real creditd gRPC server on port 0 per test, on uvloop.

The topology is the embedded server by default; CREDITD_TEST_TOPOLOGY=cluster (3 primaries) or
=sentinel (a primary, a replica, 3 sentinels) runs the same tests against those, started here from
the same binary (tests/test_topologies.py does that for the lifecycle and concurrency modules)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
import uvloop

from creditd.config.settings import Settings, SweeperSettings, load_settings, parse_settings
from creditd.core.sign_in_codes import make_sign_in_key
from creditd.devtools.local_topology import LocalCluster, LocalSentinels
from creditd.resources import default_config_path
from creditd.store.connection import AnySyncRedis
from creditd.store.embedded import EmbeddedRedis
from tests.harness import FrozenClock, Harness, ServerAt, library_client, started_server

TOPOLOGY_VARIABLE = "CREDITD_TEST_TOPOLOGY"


@pytest.fixture(autouse=True)
def machine_shared_or_alone(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Under pytest-xdist, a test marked `alone` runs while no other worker's test does: a score the
    machine's speed decides (Lighthouse's simulated throttling scales the task times it observes)
    fell below its line with the other worker's test beside it, and reads 1.00 alone. Every other
    test holds the machine shared. A turnstile before the shared lock keeps a waiting `alone` test
    from being overtaken by the other worker's next tests."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    folder = tmp_path_factory.getbasetemp().parent  # the run's own, above each worker's
    alone = request.node.get_closest_marker("alone") is not None
    with open(folder / "machine.turnstile", "a+b") as turnstile, open(folder / "machine.lock", "a+b") as machine:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(machine, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(machine, fcntl.LOCK_UN)
            fcntl.flock(turnstile, fcntl.LOCK_UN)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The shipped config, with the background sweeper off (tests run sweeper passes themselves), no
    metrics endpoint (tests that need one start it on port 0), and no clock skew check: the tests
    move the server's clock by days on purpose (tests/faults/test_clock_skew.py turns it on); the
    sign-in key in the run's own folder (not ./data)."""
    shipped = load_settings(default_config_path())
    return msgspec.structs.replace(
        shipped,
        sweeper=msgspec.structs.replace(shipped.sweeper, enabled=False),
        metrics=msgspec.structs.replace(shipped.metrics, listen=""),
        redis=msgspec.structs.replace(shipped.redis, max_clock_skew_ms=0),
        security=msgspec.structs.replace(
            shipped.security, sign_in_key_path=str(make_sign_in_key(tmp_path_factory.mktemp("keys")))
        ),
    )


def _topology(directory: Path) -> EmbeddedRedis | LocalCluster | LocalSentinels:
    name = os.environ.get(TOPOLOGY_VARIABLE, "single")
    if name == "cluster":
        return LocalCluster(directory, primaries=3)
    if name == "sentinel":
        return LocalSentinels(directory, replicas=1)
    assert name == "single", f"{TOPOLOGY_VARIABLE}: single, cluster or sentinel, not {name!r}"
    return EmbeddedRedis(directory)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis | LocalCluster | LocalSentinels]:
    with _topology(Path(tmp_path_factory.mktemp("redis"))) as topology:
        yield topology


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis, settings: Settings) -> Iterator[AnySyncRedis]:
    with library_client(redis_server.url, settings) as client:
        yield client


@pytest_asyncio.fixture
async def creditd(
    request: pytest.FixtureRequest, redis_server: EmbeddedRedis, redis_client: AnySyncRedis, settings: Settings
) -> AsyncIterator[Harness]:
    """A started server; after the test, the auditor checks every invariant of what it left in Redis
    (tests marked corrupts_data damage it on purpose)."""
    async with started_server(settings, redis_server.url, redis_client) as harness:
        yield harness
    if request.node.get_closest_marker("corrupts_data") is None:
        harness.assert_audit_clean()


@pytest_asyncio.fixture
async def server_at(
    redis_server: EmbeddedRedis, redis_client: AnySyncRedis, settings: Settings
) -> AsyncIterator[ServerAt]:
    """Starts a server on a frozen clock at an instant, with the shared settings, a config text or
    settings of the test's own (their plans and rating tables)."""

    @contextlib.asynccontextmanager
    async def start(
        now_ms: int, config: str | None = None, loaded: Settings | None = None, sweeper: SweeperSettings | None = None
    ) -> AsyncIterator[Harness]:
        own = settings if sweeper is None else msgspec.structs.replace(settings, sweeper=sweeper)
        if config is not None:
            loaded = parse_settings(tomllib.loads(config), "test")
        if loaded is not None:
            own = msgspec.structs.replace(
                own, plans=loaded.plans, timings=loaded.timings, destinations=loaded.destinations
            )
        async with started_server(own, redis_server.url, redis_client, FrozenClock(now_ms)) as harness:
            yield harness
            harness.assert_audit_clean()

    yield start
