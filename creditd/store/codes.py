"""Status codes returned by the Lua functions and the enum numbers they share with the proto:
mirrored one to one by lua/lib/codes.lua.

2xxx-5xxx are Diameter result codes and equal the proto ResultCode values; 6xxx are internal to the
Accounts service. tests/test_lua_codes.py checks that Lua, these enums and the proto agree.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    SUCCESS = 2001
    END_USER_SERVICE_DENIED = 4010
    CREDIT_LIMIT_REACHED = 4012
    UNKNOWN_SESSION = 5002
    INVALID_REQUEST = 5004
    RESOURCES_EXCEEDED = 5006
    USER_UNKNOWN = 5030
    RATING_FAILED = 5031
    ACCOUNT_EXISTS = 6001
    ACCOUNT_TERMINATED = 6002
    # The thing's state forbids it (a voucher used by another account, expired).
    REFUSED = 6003
    # Too many of it for now (sign-in codes per window).
    TOO_MANY = 6004
    # The portal session a SelfService call was made for has ended (signed out, expired).
    SESSION_ENDED = 6005


# Status reasons an operator may give to SetStatus; CREDIT, CREATED and TOPUP are set by creditd.
OPERATOR_REASONS = ("ADMIN", "FRAUD")


class AccountStatus(enum.IntEnum):
    ACTIVE = 1
    ONE_WAY_SUSPENDED = 2
    TWO_WAY_SUSPENDED = 3
    TERMINATED = 4


SUSPENDED = frozenset({AccountStatus.ONE_WAY_SUSPENDED, AccountStatus.TWO_WAY_SUSPENDED})


class Unit(enum.IntEnum):
    BYTES = 1
    SECONDS = 2
    EVENTS = 3
    MONEY = 4  # bonus money buckets: minor units of the account's currency


class ExhaustionPolicy(enum.IntEnum):
    CAP = 1
    THROTTLE = 2
    OVERAGE = 3


class FinalUnitAction(enum.IntEnum):
    NONE = 0
    TERMINATE = 1
    REDIRECT = 2
    RESTRICT_ACCESS = 3


class AnswerFormat(enum.IntEnum):
    """The format of a charge's answer, which its caller names (lua/lib/answer.lua)."""

    JSON = 0  # the fronts that read the answer's fields (replies.AnswerRecord)
    PROTOBUF = 1  # the gRPC edge: a ChargeAnswer's bytes without session_id and request_number


class RequestType(enum.IntEnum):
    INITIAL = 1
    UPDATE = 2
    TERMINATE = 3
    EVENT = 4
