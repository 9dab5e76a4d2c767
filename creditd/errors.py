"""One exception hierarchy for creditd, and the one table that maps it to gRPC status codes.

Charge answers carry business outcomes and per-item validation as result codes; these exceptions are
for whole-call problems and for the Accounts service, whose answers have no result code.
"""

from __future__ import annotations

import grpc

from creditd.store.codes import Code


class CreditdError(Exception):
    """Base of every error creditd raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(CreditdError):
    """The configuration file is missing or invalid; the message names the field."""


class InvalidArgument(CreditdError):
    """A request field is invalid; the message starts with the field's name."""


class NotFound(CreditdError):
    """The account does not exist."""


class AlreadyExists(CreditdError):
    """An account with this id exists with different data."""


class FailedPrecondition(CreditdError):
    """The account's state forbids the operation (terminated)."""


class Unavailable(CreditdError):
    """Redis cannot be reached or failed; the caller may retry with the same ids."""


class PermissionDenied(CreditdError):
    """The caller's certificate maps to no role, or its role may not call this RPC."""


class ResourceExhausted(CreditdError):
    """A per-process bound is reached (concurrent watchers); retry later or elsewhere."""


class Internal(CreditdError):
    """A bug of ours: a Lua assertion or an unexpected reply. Nothing was half-written: the
    functions assert before they write."""


GRPC_STATUS_BY_ERROR: dict[type[CreditdError], grpc.StatusCode] = {
    ConfigError: grpc.StatusCode.FAILED_PRECONDITION,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Internal: grpc.StatusCode.INTERNAL,
}

ERROR_BY_CODE: dict[Code, type[CreditdError]] = {
    Code.INVALID_REQUEST: InvalidArgument,
    Code.RATING_FAILED: InvalidArgument,
    Code.USER_UNKNOWN: NotFound,
    Code.ACCOUNT_EXISTS: AlreadyExists,
    Code.ACCOUNT_TERMINATED: FailedPrecondition,
    Code.CREDIT_LIMIT_REACHED: FailedPrecondition,
}


def grpc_status_of(error: CreditdError) -> grpc.StatusCode:
    return GRPC_STATUS_BY_ERROR.get(type(error), grpc.StatusCode.INTERNAL)


def raise_for_code(code: int, message: str) -> None:
    """Raises the exception for a Lua function's code; returns for SUCCESS."""
    if code == Code.SUCCESS:
        return
    error_class = ERROR_BY_CODE.get(Code(code))
    if error_class is None:
        raise CreditdError(f"unexpected result code {code}: {message}")
    raise error_class(message)
