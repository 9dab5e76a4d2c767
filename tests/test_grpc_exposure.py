"""What the gRPC port shows to whom (issue #37, finding 9), over real mutual TLS: server reflection
lists the services to the admin role only; the portal, a gateway and a certificate mapped to no role
are PERMISSION_DENIED (on b7c6e5e all of them got the list), while health answers everyone. The
plaintext check resolves the listen address: '127.0.0.1.invalid' (which passed a look at its first
characters on b7c6e5e, then went to DNS) and any address that is not loopback are refused at start."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from creditd.api.server import CreditdServer, is_loopback_only
from creditd.config.settings import Settings
from creditd.errors import ConfigError
from tests.harness import daytime_clock
from tests.test_security import channel_for, secure_server  # noqa: F401 (the fixture)

pytestmark = pytest.mark.asyncio


async def list_services(channel: grpc.aio.Channel) -> list[str] | grpc.StatusCode:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    try:
        async for answer in stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])):
            return [service.name for service in answer.list_services_response.service]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return []


async def test_reflection_for_admins_only_and_health_for_all(secure_server: tuple) -> None:  # noqa: F811
    server, pki = secure_server
    for client in ("admin", "portal", "gateway", "nobody"):
        async with channel_for(server, pki, client) as channel:
            listed = await list_services(channel)
            if client == "admin":
                assert isinstance(listed, list) and "creditd.v1.Accounts" in listed
            else:
                assert listed == grpc.StatusCode.PERMISSION_DENIED, client
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_plaintext_listen_address_is_resolved(redis_server: object, settings: Settings) -> None:
    for listen in ("127.0.0.1.invalid:0", "0.0.0.0:0"):
        server = CreditdServer(settings, redis_server.url, listen, daytime_clock())  # type: ignore[attr-defined]
        with pytest.raises(ConfigError, match="loopback only"):
            await server.start()
        await server.stop(0)
    assert is_loopback_only("localhost") and is_loopback_only("::1") and is_loopback_only("127.0.0.2")
    assert not is_loopback_only("10.0.0.1") and not is_loopback_only("")
