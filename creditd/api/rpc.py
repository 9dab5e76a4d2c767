"""The one error path of the gRPC edge: every RPC, unary or server-streaming, goes through `rpc`.

It names the request (x-request-id, or a new id), checks the caller's role, takes the caller's rate
token (Accounts) and in-flight slot, counts and times the call, and turns creditd errors into gRPC
status codes with the error's message as details (GRPC_STATUS_BY_ERROR, the only such table).
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from creditd import logs, metrics
from creditd.api.auth import Authorizer
from creditd.api.client_limits import ClientLimits
from creditd.api.context import Context
from creditd.errors import (
    AlreadyExists,
    ConfigError,
    CreditdError,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)
Answer = TypeVar("Answer")

GRPC_STATUS_BY_ERROR: dict[type[CreditdError], grpc.StatusCode] = {
    ConfigError: grpc.StatusCode.FAILED_PRECONDITION,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Internal: grpc.StatusCode.INTERNAL,
}


def grpc_status_of(error: CreditdError) -> grpc.StatusCode:
    return GRPC_STATUS_BY_ERROR.get(type(error), grpc.StatusCode.INTERNAL)


class Servicer(Protocol):
    authorizer: Authorizer
    client_limits: ClientLimits
    # True: Accounts calls, bounded by a per-caller rate as well as by calls in flight.
    rate_limited: bool


def _admit(servicer: Servicer, name: str, request: Any, context: Context) -> str:
    """Names the request and the caller, checks the caller's role and limits, and counts the call
    in flight (the handler calls client_limits.leave when it ends); returns the caller."""
    names = logs.CallNames(request, context.invocation_metadata)
    logs.CALL.set(names)  # before the check: a refusal's log line names the request
    caller = names.caller = servicer.authorizer.check(context, name)
    if servicer.rate_limited:
        subject = getattr(servicer, "rate_subject", None)
        servicer.client_limits.take_token(subject(caller, context) if subject else caller)
    servicer.client_limits.enter(caller)
    return caller


# The metric children of each (method, status) and method: labels() looks them up under a lock on
# every call otherwise; both sets are small and fixed.
@functools.cache
def _requests_counter(name: str, status: str) -> Any:
    return metrics.REQUESTS.labels(name, status)


@functools.cache
def _duration_histogram(name: str) -> Any:
    return metrics.REQUEST_DURATION.labels(name)


def public_message(error: CreditdError) -> str:
    """What a client is told of an error: its message, in the contract's words, except for a bug of
    ours, whose Lua and Redis details go only to the log, under the request id told instead."""
    if grpc_status_of(error) != grpc.StatusCode.INTERNAL:
        return error.message
    return f"internal error: logged by the server with request id {logs.request_id()}"


async def _refuse(name: str, error: CreditdError, context: Context) -> None:
    status = grpc_status_of(error)
    _requests_counter(name, status.name).inc()
    if status == grpc.StatusCode.INTERNAL:
        log.error("%s failed: %s", name, error.message)
    else:
        log.info("%s refused (%s): %s", name, status.name, error.message)
    await context.abort(status, public_message(error))


def _unary(method: Callable[..., Awaitable[Answer]]) -> Callable[..., Awaitable[Answer]]:
    name = method.__name__
    # The method's own metric children, looked up at its first call (not at import: a series appears
    # once its method is called) and kept here rather than found in the caches at every call.
    answered: Any = None
    duration: Any = None

    @functools.wraps(method)
    async def handler(self: Servicer, request: Any, context: Context) -> Answer:
        nonlocal answered, duration
        started = time.perf_counter()
        try:
            caller = _admit(self, name, request, context)
            try:
                answer = await method(self, request, context)
            finally:
                self.client_limits.leave(caller)
            if answered is None:
                answered = _requests_counter(name, "OK")
            answered.inc()
            return answer
        except CreditdError as error:
            await _refuse(name, error, context)
            raise AssertionError("unreachable: abort raises") from error
        finally:
            if duration is None:
                duration = _duration_histogram(name)
            duration.observe(time.perf_counter() - started)

    return handler


def _streaming(method: Callable[..., AsyncIterator[Answer]]) -> Callable[..., AsyncIterator[Answer]]:
    name = method.__name__

    @functools.wraps(method)
    async def handler(self: Servicer, request: Any, context: Context) -> AsyncIterator[Answer]:
        started = time.perf_counter()
        try:
            caller = _admit(self, name, request, context)
            try:
                log.info("%s started (%s)", name, getattr(request, "gateway_id", "") or "all events")
                async for message in method(self, request, context):
                    yield message
            finally:
                self.client_limits.leave(caller)
            _requests_counter(name, "OK").inc()
        except CreditdError as error:
            await _refuse(name, error, context)
        finally:
            _duration_histogram(name).observe(time.perf_counter() - started)

    return handler


def rpc(method: Callable[..., Any]) -> Callable[..., Any]:
    """The edge of every RPC handler, unary or server-streaming (an async generator)."""
    if inspect.isasyncgenfunction(method):
        return _streaming(method)
    return _unary(method)
