"""gRPC server reflection for operators only: it lists every service and message of the server, which
is a map for whoever probes it. Only callers of the admin role get it (with plaintext on loopback
every caller is admin); any other certificate, one mapped to no role included, is PERMISSION_DENIED.
Health stays open to all (grpc_health, registered apart)."""

from __future__ import annotations

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


class GuardedReflection(ReflectionServicer):
    def __init__(self, service_names: Sequence[str], authorizer: Authorizer) -> None:
        super().__init__(service_names)
        self.authorizer = authorizer

    async def ServerReflectionInfo(  # type: ignore[override]
        self, request_iterator: AsyncIterable[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            identity, role = self.authorizer.caller(context)
        except PermissionDenied as error:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, error.message)
        if role not in REFLECTION_ROLES:
            log.warning("reflection denied to %s (role %s)", identity, role)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"caller: role {role} may not use reflection")
        async for answer in super().ServerReflectionInfo(request_iterator, context):  # type: ignore[attr-defined]
            yield answer


def add_guarded_reflection(server: grpc.aio.Server, service_names: Sequence[str], authorizer: Authorizer) -> None:
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(GuardedReflection(service_names, authorizer), server)  # type: ignore[no-untyped-call]
