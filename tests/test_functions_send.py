"""Charging sends its call with `Functions.send` and checks the raw reply itself (one coroutine layer
less a charge). Proves each kind of Functions sends alike: the server's own (its auto-pipeline), a
tool's `DirectFunctions` (its own client, no pipeline) and a portal session's `SessionFunctions`
wrapping the server's. Each plays a session's INITIAL and TERMINATE against a real server's Redis,
and has a charge Lua refuses answered with the same refusal; the auditor checks what they left.
(`functions.checked`, which raises a function's error code, is Functions.call's too, and covered
by every test of a refused call.)"""

from __future__ import annotations

import pytest

from creditd.config.settings import Settings
from creditd.core.charging import Charging
from creditd.store.calls import Calls, ChargeSpec, UnitSpec
from creditd.store.connection import connect
from creditd.store.embedded import EmbeddedRedis
from creditd.store.functions import DirectFunctions, Functions, SessionFunctions
from creditd.v1 import creditd_pb2 as pb
from tests.harness import INITIAL, TERMINATE, THAI_NUMBER, VOICE, Harness

pytestmark = pytest.mark.asyncio
ACCOUNT = "66811112222"


def voice(session_id: str, kind: int, number: int, used: int = 0) -> ChargeSpec:
    units = [UnitSpec(VOICE, used=used)]
    return ChargeSpec(session_id, kind, number, ACCOUNT, "gw-send", units, THAI_NUMBER)


async def play(charging: Charging, session_id: str) -> tuple[int, int, int]:
    """A session of one voice minute: the first grant, then what the TERMINATE charged."""
    first = await charging.charge(voice(session_id, INITIAL, 0))
    assert first.answer.result == pb.SUCCESS, first.answer
    last = await charging.charge(voice(session_id, TERMINATE, 1, used=60))
    assert last.answer.result == pb.SUCCESS, last.answer
    return first.answer.grants[0].granted, last.answer.grants[0].charged, last.answer.account_status


async def test_every_kind_of_functions_sends_a_charge_alike(
    creditd: Harness, redis_server: EmbeddedRedis, settings: Settings
) -> None:
    await creditd.create_account(ACCOUNT, balance=10_000)
    client = connect(redis_server.url, settings.redis)
    server_functions = creditd.server.functions
    kinds: dict[str, Functions] = {
        "server": server_functions,
        "direct": DirectFunctions(client),
        "session": SessionFunctions(server_functions, "not-a-portal-session"),
    }
    try:
        outcomes = {}
        for name, functions in kinds.items():
            charging = Charging(Calls(settings.redis.partitions), functions, creditd.clock)
            outcomes[name] = await play(charging, f"send-{name}")
            # a session id Lua refuses (a space): refused in the answer, as the gateway is told
            refused = await charging.charge(voice("bad session", INITIAL, 0))
            assert refused.answer.result == pb.INVALID_REQUEST, refused.answer
            assert refused.answer.error.startswith("session_id: "), refused.answer
    finally:
        await client.aclose()
    assert set(outcomes.values()) == {(outcomes["server"][0], 100, pb.ACTIVE)}, outcomes
    card = await creditd.get(ACCOUNT)
    assert (card.balance, card.reserved, card.open_sessions) == (10_000 - 3 * 100, 0, 0)
