"""Server-initiated requests over a real socket: when the core raises REAUTH for a session a Diameter
gateway holds (its account suspended one way by an SMS that spent its last money, then resumed by a
top-up), `creditd diameter` sends that gateway a Re-Auth-Request for the session; on a two-way suspension an
Abort-Session-Request. The gateway's answers are counted per peer."""

from __future__ import annotations

import pytest

from creditd.diameter import metrics
from creditd.diameter.codec import make
from creditd.diameter.dictionary import Code, Command
from creditd.diameter.server import DiameterServer
from creditd.v1 import creditd_pb2 as pb
from tests.diameter.client import INITIAL, Service, ccr, connected, result_of
from tests.harness import EVENT, SMS, Harness

pytestmark = pytest.mark.asyncio
SUBSCRIBER = "66833330000"
INCOMING = 4  # free incoming calls: a session that holds no money


def _count(command: str, result: str) -> float:
    return metrics.SERVER_REQUESTS.labels("pgw.test.local", command, result)._value.get()


async def test_reauth_and_abort_reach_the_gateway_holding_the_session(
    creditd: Harness, diameter: DiameterServer
) -> None:
    await creditd.create_account(SUBSCRIBER, balance=50)
    answered_before = (_count("RAR", "2001"), _count("ASR", "2001"))
    async with connected(diameter.port) as client:
        opened = await client.ask(ccr("ims;42", INITIAL, 0, SUBSCRIBER, [Service(INCOMING, 0)]))
        assert result_of(opened) == 2001
        await creditd.charge("sms-1", EVENT, 0, SUBSCRIBER, [(SMS, 0, 0)], gateway_id="smsc")  # 50 spent
        rar = await client.read(10)
        assert rar.command == Command.RE_AUTH and rar.is_request and rar.application == 4
        assert rar.first(Code.SESSION_ID) == make(Code.SESSION_ID, "ims;42")
        assert rar.first(Code.DESTINATION_HOST) == make(Code.DESTINATION_HOST, "pgw.test.local")
        assert rar.first(Code.RE_AUTH_REQUEST_TYPE) == make(Code.RE_AUTH_REQUEST_TYPE, 0)
        await client.send(rar.answer([rar.avps[0], make(Code.RESULT_CODE, 2001)]))

        await creditd.accounts.SetStatus(
            pb.SetStatusRequest(account_id=SUBSCRIBER, status=pb.TWO_WAY_SUSPENDED, reason="FRAUD")
        )
        asr = await client.read(10)
        assert asr.command == Command.ABORT_SESSION and asr.first(Code.SESSION_ID) == make(Code.SESSION_ID, "ims;42")
        await client.send(asr.answer([asr.avps[0], make(Code.RESULT_CODE, 2001)]))
        # One more round trip: the server has read our answers before it answers this.
        replayed = await client.ask(ccr("ims;42", INITIAL, 0, SUBSCRIBER, [Service(INCOMING, 0)]))
        assert replayed.command == Command.CREDIT_CONTROL
    assert (_count("RAR", "2001"), _count("ASR", "2001")) == (answered_before[0] + 1, answered_before[1] + 1)
