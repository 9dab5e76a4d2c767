"""gRPC server reflection for operators only: it lists every service and message of the server, which
is a map for whoever probes it. Only callers of the admin role get it (with plaintext on loopback
every caller is admin); any other certificate, one mapped to no role included, is PERMISSION_DENIED.
Health stays open to all (grpc_health, registered apart).

The denial is sent only once the caller has stopped writing: the grpc.aio client reports a write that
meets an already ended stream as INTERNAL "Internal error from Core", in place of the status the
server sent (grpc/grpc#36066). So the denied caller's requests are read, unanswered, until it
half-closes, or until its stream has been quiet for DENIAL_QUIET_S (a caller that waits for an answer
to its first request, as grpcurl does), or MAX_DENIED_REQUESTS have come."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any

import grpc
from grpc_reflection.v1alpha import reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

from creditd.api.auth import Authorizer
from creditd.errors import PermissionDenied

log = logging.getLogger(__name__)
REFLECTION_ROLES = frozenset({"admin"})
DENIAL_QUIET_S = 1.0
MAX_DENIED_REQUESTS = 100


class GuardedReflection(ReflectionServicer):
    def __init__(self, service_names: Sequence[str], authorizer: Authorizer) -> None:
        super().__init__(service_names)
        self.authorizer = authorizer

    async def ServerReflectionInfo(  # type: ignore[override]
        self, request_iterator: AsyncIterable[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        denial = self._denial(context)
        if denial is not None:
            await _until_caller_stops_writing(request_iterator)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, denial)
        async for answer in super().ServerReflectionInfo(request_iterator, context):  # type: ignore[attr-defined]
            yield answer

    def _denial(self, context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
        """Why the caller may not use reflection, or None when it may."""
        try:
            identity, role = self.authorizer.caller(context)
        except PermissionDenied as error:
            log.warning("reflection denied: %s", error.message)
            return error.message
        if role in REFLECTION_ROLES:
            return None
        log.warning("reflection denied to %s (role %s)", identity, role)
        return f"caller: role {role} may not use reflection"


async def _until_caller_stops_writing(request_iterator: AsyncIterable[Any]) -> None:
    requests = aiter(request_iterator)
    for _ in range(MAX_DENIED_REQUESTS):
        try:
            async with asyncio.timeout(DENIAL_QUIET_S):
                await anext(requests)
        except (StopAsyncIteration, TimeoutError):
            return


def add_guarded_reflection(server: grpc.aio.Server, service_names: Sequence[str], authorizer: Authorizer) -> None:
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(GuardedReflection(service_names, authorizer), server)  # type: ignore[no-untyped-call]
