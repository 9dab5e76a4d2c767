"""No internals on the wire: when a function fails for a reason of ours (here a session's stored
array corrupted on purpose, a value too many, so that the Lua refuses to read it), a unary Charge gets INTERNAL and a
ChargeBatch item UNABLE_TO_COMPLY, each with a message in the contract's words that gives the request
id, never the Lua or Redis text; that text goes to the server's log under the same request id. And a
batch item Redis refuses for memory is answered as a unary Charge is: the whole batch
RESOURCE_EXHAUSTED, nothing written (tests/faults/test_redis_memory.py)."""

from __future__ import annotations

import logging

import grpc
import msgspec
import pytest

from creditd.v1 import creditd_pb2 as pb
from tests.harness import INITIAL, UPDATE, VOICE, Harness, charge_request

pytestmark = pytest.mark.asyncio
ACCOUNT = "66857000001"
INTERNAL_WORDS = ("user_function", "redis function failed", "script", "corrupt session")


async def open_corrupt_session(creditd: Harness, session_id: str) -> None:
    opened = await creditd.charge(session_id, INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])
    assert opened.result == pb.SUCCESS
    key = creditd.server_keys().session(ACCOUNT, "gw1", session_id)
    # its values as they are packed: the answer in it is protobuf, which need not be UTF-8
    stored = msgspec.msgpack.decode(creditd.redis.get(key), type=list[msgspec.Raw])
    creditd.redis.set(key, msgspec.msgpack.encode([*stored, "not a reservation's"]))


@pytest.mark.corrupts_data
async def test_a_failing_function_is_reported_in_the_contracts_words(
    creditd: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await creditd.create_account(ACCOUNT, balance=10_000)
    await open_corrupt_session(creditd, "unary")
    await open_corrupt_session(creditd, "batched")
    caplog.set_level(logging.INFO)

    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await creditd.credit_control.Charge(
            charge_request("unary", UPDATE, 1, ACCOUNT, [(VOICE, 0, 60)]), metadata=(("x-request-id", "req-unary"),)
        )
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    details = failed.value.details() or ""
    assert "req-unary" in details and not any(word in details for word in INTERNAL_WORDS), details

    batch = pb.ChargeBatchRequest(
        requests=[
            charge_request("batched", UPDATE, 1, ACCOUNT, [(VOICE, 0, 60)]),
            charge_request("fine", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)]),
        ]
    )
    answers = (await creditd.credit_control.ChargeBatch(batch, metadata=(("x-request-id", "req-batch"),))).answers
    assert [answer.result for answer in answers] == [pb.UNABLE_TO_COMPLY, pb.SUCCESS]
    error = answers[0].error
    assert "req-batch" in error and not any(word in error for word in INTERNAL_WORDS), error

    logged = [record for record in caplog.records if "corrupt session" in record.getMessage()]
    assert len(logged) == 2, [record.getMessage() for record in caplog.records]
