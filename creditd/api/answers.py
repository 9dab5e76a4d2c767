"""A Charge's answer sent on as the bytes the `charge` function wrote (lua/lib/answer.lua).

The function writes the answer's protobuf itself for the gRPC edge, all but the two fields the
request has (session_id, request_number), which go in front here: reading a JSON answer into records
and those into a ChargeAnswer, for grpc to write out again, cost the serving process 14 000
instructions a unary Charge and 22 600 a batched one (`python -m loadtest.server_instructions`),
Redis some 4 000 more a call than JSON (`python -m loadtest.redis_instructions`). Protobuf's own
encoder writes the same bytes (tests/test_answer_formats.py). An answer stored as JSON (before this
format, replayed to a retransmission) still goes the long way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from creditd.api.messages import answer_message
from creditd.store.calls import ChargeLike
from creditd.store.codes import Code
from creditd.store.functions import checked
from creditd.store.replies import ANSWER_DECODER, success_answer

# A varint's bytes for 0..127 (lengths of ids, most request numbers), and the keys of ChargeAnswer's
# session_id (1, length-delimited), request_number (2, varint) and result (3, varint).
_ONE_BYTE = [bytes((value,)) for value in range(128)]
_SESSION_ID_KEY, _REQUEST_NUMBER_KEY, _RESULT_KEY = b"\x0a", b"\x10", 0x18
_ANSWERS_KEY = b"\x0a"  # ChargeBatchAnswer's answers (1, length-delimited)
_JSON_START = b"["  # never the first byte of a ChargeAnswer's fields 3 to 6 (it would be field 11's)


def varint(value: int) -> bytes:
    """Protobuf's varint of a non-negative integer."""
    if value < 128:
        return _ONE_BYTE[value]
    out = bytearray()
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# An answer's first three bytes, by the result they stand for (every code is a varint of two bytes):
# a look-up where leading_result's loop over the bytes cost a Charge some 3 000 instructions.
_RESULT_OF_HEAD = {bytes((_RESULT_KEY,)) + varint(code): int(code) for code in Code}


def leading_result(body: bytes) -> int:
    """The result code of an answer the function wrote in protobuf: its first field when not 0."""
    if not body or body[0] != _RESULT_KEY:
        return 0
    result, shift = 0, 0
    for byte in body[1:]:
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result
        shift += 7
    raise ValueError("a ChargeAnswer's result ends in the middle of its varint")


def _head(request: ChargeLike) -> bytes:
    """The answer's session_id and request_number, as protobuf writes them (neither when empty or 0)."""
    session_id, number = request.session_id.encode(), request.request_number
    head = _SESSION_ID_KEY + varint(len(session_id)) + session_id if session_id else b""
    return head + _REQUEST_NUMBER_KEY + varint(number) if number else head


def answer_of_body(request: ChargeLike, body: bytes) -> tuple[bytes, int]:
    """A charge's answer as gRPC sends it, and its result code (for the charges counter), from the
    body of its SUCCESS reply, protobuf or JSON."""
    if body[:1] != _JSON_START:
        result = _RESULT_OF_HEAD.get(body[:3])
        return _head(request) + body, leading_result(body) if result is None else result
    answer = ANSWER_DECODER.decode(body)
    return answer_message(request, answer).SerializeToString(), answer.result


def charge_answer(request: ChargeLike, raw: Any) -> tuple[bytes, int]:
    """answer_of_body from the function's raw reply (Charging.send); raises the error a refusal of
    the call stands for."""
    body = success_answer(raw)
    return answer_of_body(request, checked(raw).body if body is None else body)


def batch_answer(answers: Sequence[bytes]) -> bytes:
    """A ChargeBatchAnswer of these ChargeAnswers' bytes (its field 1, repeated)."""
    return b"".join([part for answer in answers for part in (_ANSWERS_KEY, varint(len(answer)), answer)])
