"""Shared fixtures: one real embedded Redis for the whole run (flushed before every test; the
function library survives FLUSHALL), and a real creditd gRPC server on port 0 per test, on uvloop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
import redis
import uvloop

from creditd.embedded import EmbeddedRedis
from creditd.library import render_library
from creditd.resources import default_config_path
from creditd.settings import Settings, load_settings
from tests.harness import Harness, started_server


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The shipped config, with the background sweeper off (tests run sweeper passes themselves) and
    no metrics endpoint (tests that need one start it on port 0)."""
    shipped = load_settings(default_config_path())
    return msgspec.structs.replace(
        shipped,
        sweeper=msgspec.structs.replace(shipped.sweeper, enabled=False),
        metrics=msgspec.structs.replace(shipped.metrics, listen=""),
    )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    embedded = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")))
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis, settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.function_load(render_library(settings), replace=True)
    try:
        yield client
    finally:
        client.close()


@pytest_asyncio.fixture
async def creditd(
    request: pytest.FixtureRequest, redis_server: EmbeddedRedis, redis_client: redis.Redis, settings: Settings
) -> AsyncIterator[Harness]:
    """A started server; after the test, the auditor checks every invariant of what it left in Redis
    (tests marked corrupts_data damage it on purpose)."""
    async with started_server(settings, redis_server.url, redis_client) as harness:
        yield harness
    if request.node.get_closest_marker("corrupts_data") is None:
        harness.assert_audit_clean()
