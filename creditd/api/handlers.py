"""Where the generated add_*_to_server functions put creditd's services: generic handlers only.

grpc's aio server (1.85) keeps one pending request per registered method, and for every RPC that
arrives it waits on all of them at once (asyncio.wait, a done-callback added to and removed from
each): with creditd's 38 methods, a quarter of the serving process' instructions per unary Charge
(`python -m loadtest.server_instructions`, docs/performance.md). Handlers added only as generic
handlers share one pending request and are found by their method's name in a dictionary.

A service whose answers some methods return already written (Charge: api/answers.py) is added by
`service_handler` instead, from the proto's own description of the service: those methods' answers
are sent as the bytes they are, the rest as the generated code would (tests/test_answer_formats.py
checks both against it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass


class GenericHandlersOnly:
    """The server as add_*_to_server sees it: add_registered_method_handlers adds nothing (the same
    handlers come through add_generic_rpc_handlers, which the generated code calls first)."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, handlers: Mapping[str, Any]) -> None:
        del service_name, handlers


def generic_handlers_only(server: grpc.aio.Server) -> grpc.aio.Server:
    """The view to hand add_*_to_server: typed as the server they expect, of which they call only
    the two methods above."""
    return cast(grpc.aio.Server, GenericHandlersOnly(server))


def _method_handler(
    method: MethodDescriptor, behaviour: Callable[..., Any], as_bytes: bool
) -> grpc.RpcMethodHandler[Any, Any]:
    if method.client_streaming:
        raise ValueError(f"{method.full_name}: client-streaming methods are not served")
    make = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
    serializer = bytes if as_bytes else GetMessageClass(method.output_type).SerializeToString
    return make(
        behaviour,
        request_deserializer=GetMessageClass(method.input_type).FromString,
        response_serializer=serializer,
    )


def service_handler(
    service: ServiceDescriptor, servicer: object, answered_as_bytes: frozenset[str]
) -> grpc.GenericRpcHandler:
    """The service's methods on the servicer's, as the generated add function adds them, but the
    answers of the methods named in answered_as_bytes sent as the bytes their behaviour returns."""
    unknown = answered_as_bytes - {method.name for method in service.methods}
    if unknown:
        raise ValueError(f"{service.full_name} has no method {', '.join(sorted(unknown))}")
    handlers = {
        method.name: _method_handler(method, getattr(servicer, method.name), method.name in answered_as_bytes)
        for method in service.methods
    }
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
