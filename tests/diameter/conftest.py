"""Fixtures of the Diameter tests: a real `creditd diameter` server (DiameterServer on port 0) beside the
gRPC server of the `creditd` fixture, on the same Redis and clock, with the test peers allowed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import msgspec
import pytest_asyncio

from creditd.config.diameter import DiameterPeer, DiameterSettings
from creditd.config.settings import Settings
from creditd.diameter.server import DiameterServer
from creditd.store.embedded import EmbeddedRedis
from tests.diameter.client import GATEWAY_HOST, GATEWAY_REALM
from tests.harness import Harness

PEERS = [
    DiameterPeer(origin_host=GATEWAY_HOST, origin_realm=GATEWAY_REALM),
    DiameterPeer(origin_host="scscf.test.local", origin_realm="test.local"),
]
TEST_DIAMETER = DiameterSettings(
    listen="127.0.0.1:0",
    origin_host="creditd.test",
    origin_realm="test",
    peers=PEERS,
    handshake_timeout_s=1.0,
    write_timeout_s=1.0,
    drain_timeout_s=5.0,
    rating_groups={"100": 2},
)

DiameterAt = Callable[..., AbstractAsyncContextManager[DiameterServer]]


@pytest_asyncio.fixture
async def diameter_at(creditd: Harness, redis_server: EmbeddedRedis, settings: Settings) -> AsyncIterator[DiameterAt]:
    """Starts Diameter fronts with the test settings, or with some of them replaced."""

    @contextlib.asynccontextmanager
    async def start(redis_url: str | None = None, **changes: object) -> AsyncIterator[DiameterServer]:
        own = msgspec.structs.replace(settings, diameter=msgspec.structs.replace(TEST_DIAMETER, **changes))
        server = DiameterServer(own, redis_url or redis_server.url, "127.0.0.1:0", creditd.clock)
        await server.start()
        try:
            yield server
        finally:
            await server.stop(2.0)

    yield start


@pytest_asyncio.fixture
async def diameter(diameter_at: DiameterAt) -> AsyncIterator[DiameterServer]:
    async with diameter_at() as server:
        yield server
