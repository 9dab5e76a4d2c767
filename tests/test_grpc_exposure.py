"""What the gRPC port shows to whom (issue #37, finding 9), over real mutual TLS: server reflection
lists the services to the admin role only; the portal, a gateway and a certificate mapped to no role
are PERMISSION_DENIED (on b7c6e5e all of them got the list), while health answers everyone. The
plaintext check resolves the listen address: '127.0.0.1.invalid' (which passed a look at its first
characters on b7c6e5e, then went to DNS) and any address that is not loopback are refused at start.

A denied caller gets PERMISSION_DENIED however it writes its request stream: many requests before it
reads (60-85 % of such calls ended INTERNAL "Internal error from Core" before the server read the
stream to its end: the grpc.aio client reports a write that meets an ended stream as INTERNAL, over
the server's status, grpc/grpc#36066), none at all, or one request and then a wait for the answer
(denied once the stream has been quiet for reflection.DENIAL_QUIET_S, shortened here)."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from creditd.api import reflection
from creditd.api.server import CreditdServer, is_loopback_only
from creditd.config.settings import Settings
from creditd.errors import ConfigError
from tests.harness import daytime_clock
from tests.test_security import channel_for, secure_server  # noqa: F401 (the fixture)

pytestmark = pytest.mark.asyncio


LIST_SERVICES = reflection_pb2.ServerReflectionRequest(list_services="")
# Calls per way of writing: the race is timing's, so one call may pass by luck; twenty in a row will not.
CALLS_PER_WAY = 20


async def list_services(
    channel: grpc.aio.Channel, requests: Iterable[reflection_pb2.ServerReflectionRequest] = (LIST_SERVICES,)
) -> list[str] | grpc.StatusCode:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    try:
        async for answer in stub.ServerReflectionInfo(iter(requests)):
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


async def test_reflection_denied_however_the_request_stream_is_written(
    secure_server: tuple,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, pki = secure_server
    for client in ("gateway", "nobody"):
        async with channel_for(server, pki, client) as channel:
            for requests in ([LIST_SERVICES] * 16, []):
                codes = [await list_services(channel, requests) for _ in range(CALLS_PER_WAY)]
                assert codes == [grpc.StatusCode.PERMISSION_DENIED] * CALLS_PER_WAY, (client, len(requests))
    # Shortened only here: a caller that waits for an answer writes nothing while the quiet runs out.
    monkeypatch.setattr(reflection, "DENIAL_QUIET_S", 0.05)
    for client in ("gateway", "nobody"):
        async with channel_for(server, pki, client) as channel:
            call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo()
            await call.write(LIST_SERVICES)
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await call.read()
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED, client
    async with channel_for(server, pki, "admin") as channel:
        listed = await list_services(channel, [LIST_SERVICES] * 16)
        assert isinstance(listed, list) and "creditd.v1.Accounts" in listed


async def test_plaintext_listen_address_is_resolved(redis_server: object, settings: Settings) -> None:
    for listen in ("127.0.0.1.invalid:0", "0.0.0.0:0"):
        server = CreditdServer(settings, redis_server.url, listen, daytime_clock())  # type: ignore[attr-defined]
        with pytest.raises(ConfigError, match="loopback only"):
            await server.start()
        await server.stop(0)
    assert is_loopback_only("localhost") and is_loopback_only("::1") and is_loopback_only("127.0.0.2")
    assert not is_loopback_only("10.0.0.1") and not is_loopback_only("")
