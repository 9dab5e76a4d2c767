"""Where the generated add_*_to_server functions put creditd's services: generic handlers only.

grpc's aio server (1.85) keeps one pending request per registered method, and for every RPC that
arrives it waits on all of them at once (asyncio.wait, a done-callback added to and removed from
each): with creditd's 38 methods, a quarter of the serving process' instructions per unary Charge
(`python -m loadtest.server_instructions`, docs/performance.md). Handlers added only as generic
handlers share one pending request and are found by their method's name in a dictionary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import grpc


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
