"""One exception hierarchy for creditd. The edge maps it to gRPC status codes (api/rpc.py);
the functions' result codes map onto it in store/replies.py.

Charge answers carry business outcomes and per-item validation as result codes; these exceptions are
for whole-call problems and for the Accounts service, whose answers have no result code.
"""

from __future__ import annotations


class CreditdError(Exception):
    """Base of every error creditd raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(CreditdError):
    """The configuration file is missing or invalid; the message names the field."""


class StartupError(CreditdError):
    """Something a process needs in order to start is not there: a port already in use, a data
    directory it cannot use, a TLS file it cannot read. The message names what failed and where."""


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


class Unauthenticated(CreditdError):
    """The caller's proof of who they are (a portal session token) is not one creditd holds."""


class ResourceExhausted(CreditdError):
    """A bound is reached: a per-process one (concurrent watchers, a caller's calls in flight) or
    Redis' memory; retry later or elsewhere."""


class Internal(CreditdError):
    """A bug of ours: a Lua assertion or an unexpected reply. Nothing was half-written: the
    functions assert before they write."""
