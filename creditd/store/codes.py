"""Status codes returned by the Lua functions: mirrored one to one by lua/lib/codes.lua.

2xxx-5xxx are Diameter result codes and equal the proto ResultCode values; 6xxx are internal to the
Accounts service. tests/test_lua_codes.py checks that Lua, this enum and the proto agree.
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


# Status reasons an operator may give to SetStatus; CREDIT, CREATED and TOPUP are set by creditd.
OPERATOR_REASONS = ("ADMIN", "FRAUD")
