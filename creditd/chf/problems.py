"""ProblemDetails (TS 29.571, RFC 7807) answers: the status, TS 32.291's or TS 29.500's cause and, for a
bad field, invalidParams naming it as a JSON pointer."""

from __future__ import annotations

import msgspec

PROBLEM_JSON = "application/problem+json"


class InvalidParam(msgspec.Struct, frozen=True):
    param: str
    reason: str


class ProblemDetails(msgspec.Struct, frozen=True, omit_defaults=True):
    status: int
    cause: str
    title: str = ""
    detail: str = ""
    invalidParams: list[InvalidParam] = []


class Problem(Exception):
    """A whole request refused: answered as ProblemDetails with this status and cause."""

    def __init__(self, status: int, cause: str, detail: str, param: str = "") -> None:
        super().__init__(detail)
        params = [InvalidParam(param=param, reason=detail)] if param else []
        self.details = ProblemDetails(
            status=status, cause=cause, title=TITLES.get(status, ""), detail=detail, invalidParams=params
        )


TITLES = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def invalid(param: str, reason: str) -> Problem:
    """A 400 naming the field (TS 32.291 cause CHARGING_FAILED: the request cannot be charged as sent)."""
    return Problem(400, "CHARGING_FAILED", reason, param)


ENCODER = msgspec.json.Encoder()
