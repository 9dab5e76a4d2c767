"""The Diameter base protocol of `creditd diameter` over real sockets: kamailio's own CER (with and without
Host-IP-Address) gets a CEA with Vendor-Specific-Application-Id {10415, 4}; unknown peers get 3010 and
are closed; DWR/DWA both ways and the watchdog closing a silent peer; DPR/DPA; shutdown answers what
is in flight, then sends DPR. The bounds: no CER, a header announcing an oversize message, a message
stalled half-way, a peer that does not read: each closed within its setting. Protocol errors carry the
E bit and Failed-AVP; bit flips of kamailio's real CCRs never kill the server and never charge."""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Callable

import pytest

from creditd.diameter import metrics
from creditd.diameter.codec import Avp, Message, decode, encode, make
from creditd.diameter.dictionary import Code, Command
from creditd.diameter.server import DiameterServer
from tests.diameter.capture import received
from tests.diameter.client import (
    INITIAL,
    Client,
    Service,
    ccr,
    cer,
    connected,
    request,
    result_of,
)
from tests.diameter.conftest import DiameterAt
from tests.harness import Harness, dump

pytestmark = pytest.mark.asyncio
KAMAILIO_HOST = "scscf.test.local"


def _without(message: bytes, code: int) -> bytes:
    decoded = decode(message, 65536)
    decoded.avps = [avp for avp in decoded.avps if avp.code != code]
    return encode(decoded)


@pytest.mark.parametrize("host_ip", [True, False])
async def test_kamailio_cer_gets_a_cea_naming_ro(diameter: DiameterServer, host_ip: bool) -> None:
    kamailio_cer = received("CER")[0]
    if not host_ip:
        kamailio_cer = _without(kamailio_cer, Code.HOST_IP_ADDRESS)
    client = await Client.open(diameter.port)
    try:
        cea = await client.ask(kamailio_cer)
    finally:
        client.close()
    assert result_of(cea) == 2001 and not cea.is_request and cea.command == Command.CAPABILITIES_EXCHANGE
    vsai = cea.first(Code.VENDOR_SPECIFIC_APPLICATION_ID)
    assert vsai is not None
    assert vsai.child(Code.VENDOR_ID) == make(Code.VENDOR_ID, 10415)
    assert vsai.child(Code.AUTH_APPLICATION_ID) == make(Code.AUTH_APPLICATION_ID, 4)
    assert cea.first(Code.AUTH_APPLICATION_ID) == make(Code.AUTH_APPLICATION_ID, 4)
    assert cea.first(Code.HOST_IP_ADDRESS) == make(Code.HOST_IP_ADDRESS, b"\0\1\x7f\0\0\1")
    assert cea.first(Code.ORIGIN_HOST) == make(Code.ORIGIN_HOST, "creditd.test")


async def test_an_unknown_peer_gets_3010_and_is_closed(diameter: DiameterServer) -> None:
    client = await Client.open(diameter.port)
    cea = await client.ask(cer("stranger.test.local"))
    assert result_of(cea) == 3010 and cea.is_error
    assert await client.closed_within(2.0)


async def until_counted(counted: Callable[[], bool]) -> None:
    """Waits (2 s at most) for the server's side of a close to be counted: it follows the client's."""
    async with asyncio.timeout(2.0):
        while not counted():
            await asyncio.sleep(0.01)


def closes(reason: str) -> float:
    value: float = metrics.CLOSED.labels(reason)._value.get()
    return value


async def test_a_peer_that_never_sends_cer_is_closed(diameter: DiameterServer) -> None:
    before = closes("handshake_timeout")
    client = await Client.open(diameter.port)
    assert await client.closed_within(3.0)  # handshake_timeout_s is 1 s
    await until_counted(lambda: closes("handshake_timeout") == before + 1)


async def test_a_request_before_cer_closes(diameter: DiameterServer) -> None:
    client = await Client.open(diameter.port)
    await client.send(request(Command.DEVICE_WATCHDOG, 0, []))
    assert await client.closed_within(2.0)


async def test_dwr_dwa_and_dpr_dpa(diameter: DiameterServer) -> None:
    async with connected(diameter.port) as client:
        dwa = await client.ask(request(Command.DEVICE_WATCHDOG, 0, []))
        assert result_of(dwa) == 2001 and dwa.command == Command.DEVICE_WATCHDOG
        dpa = await client.ask(request(Command.DISCONNECT_PEER, 0, [make(Code.DISCONNECT_CAUSE, 0)]))
        assert result_of(dpa) == 2001 and dpa.command == Command.DISCONNECT_PEER
        assert await client.closed_within(2.0)


async def test_the_watchdog_probes_and_closes_a_silent_peer(diameter_at: DiameterAt) -> None:
    before = metrics.WATCHDOG_FAILURES.labels("pgw.test.local")._value.get()
    closed_before = closes("watchdog")
    async with diameter_at(watchdog_interval_s=0.3) as front, connected(front.port) as client:
        dwr = await client.read(2.0)
        assert dwr.command == Command.DEVICE_WATCHDOG and dwr.is_request
        await client.send(dwr.answer([make(Code.RESULT_CODE, 2001)]))  # answered: the connection stays
        second = await client.read(2.0)
        assert second.command == Command.DEVICE_WATCHDOG  # unanswered this time
        assert await client.closed_within(2.0)
        await until_counted(lambda: closes("watchdog") == closed_before + 1)
    assert metrics.WATCHDOG_FAILURES.labels("pgw.test.local")._value.get() == before + 1


async def test_unknown_command_and_application_are_protocol_errors(diameter: DiameterServer) -> None:
    async with connected(diameter.port) as client:
        answer = await client.ask(request(Command.RE_AUTH, 4, [make(Code.SESSION_ID, "x;1")]))
        assert result_of(answer) == 3001 and answer.is_error
        ccr_other = request(Command.CREDIT_CONTROL, 16777238, [make(Code.SESSION_ID, "x;2")])
        answer = await client.ask(ccr_other)
        assert result_of(answer) == 3007 and answer.is_error


async def test_a_missing_avp_is_5005_with_failed_avp(creditd: Harness, diameter: DiameterServer) -> None:
    await creditd.create_account("66811110000", balance=1000)
    message = ccr("s;1", INITIAL, 0, "66811110000", [Service(100, 30)])
    message.avps = [avp for avp in message.avps if avp.code != Code.CC_REQUEST_NUMBER]
    async with connected(diameter.port) as client:
        answer = await client.ask(message)
    assert result_of(answer) == 5005 and not answer.is_error
    failed = answer.first(Code.FAILED_AVP)
    assert failed is not None and isinstance(failed.value, bytes)
    assert struct.unpack(">I", failed.value[:4])[0] == Code.CC_REQUEST_NUMBER


async def test_an_unknown_mandatory_avp_is_5001(diameter: DiameterServer) -> None:
    message = ccr("s;2", INITIAL, 0, "66811110000", [Service(100, 30)], extra=[Avp(77777, b"boom", 0, True)])
    async with connected(diameter.port) as client:
        answer = await client.ask(message)
    assert result_of(answer) == 5001
    assert answer.first(Code.SESSION_ID) == make(Code.SESSION_ID, "s;2")
    failed = answer.first(Code.FAILED_AVP)
    assert failed is not None and isinstance(failed.value, bytes) and failed.value[:4] == (77777).to_bytes(4, "big")


async def test_an_oversize_message_is_answered_5015_and_closed(creditd: Harness, diameter: DiameterServer) -> None:
    before = dump(creditd.redis)
    async with connected(diameter.port) as client:
        header = struct.pack(">II4sII", (1 << 24) | 1_000_000, (0xC0 << 24) | 272, (4).to_bytes(4, "big"), 5, 5)
        answer = await client.ask(header)
        assert result_of(answer) == 5015 and answer.hop_by_hop == 5
        assert await client.closed_within(2.0)
    assert dump(creditd.redis) == before


async def test_a_message_stalled_half_way_is_closed(diameter: DiameterServer) -> None:
    before = closes("stalled_message")
    async with connected(diameter.port) as client:
        await client.send(encode(request(Command.DEVICE_WATCHDOG, 0, []))[:30])
        assert await client.closed_within(3.0)  # handshake_timeout_s (1 s) inside a message
        await until_counted(lambda: closes("stalled_message") == before + 1)


async def test_a_peer_that_does_not_read_is_closed(diameter: DiameterServer) -> None:
    """The client writes DWRs and never reads their DWAs: once the server's buffers are full, its write
    waits write_timeout_s (1 s) and it closes the connection. The client must not read meanwhile (that
    would relieve the server), so the close is observed on the server's side."""
    slow_before = metrics.CLOSED.labels("slow_reader")._value.get()
    client = await Client.open(diameter.port, receive_buffer_bytes=4096)
    try:
        assert result_of(await client.ask(cer())) == 2001
        dwrs = encode(request(Command.DEVICE_WATCHDOG, 0, [])) * 100
        async with asyncio.timeout(60):
            while diameter.connections:
                try:
                    client.writer.write(dwrs)
                    await asyncio.wait_for(client.writer.drain(), 0.5)
                except TimeoutError:
                    continue  # our own buffers are full: the server stopped reading; wait for its close
                except ConnectionError:
                    break
            while diameter.connections:
                await asyncio.sleep(0.05)
    finally:
        client.close()
    assert metrics.CLOSED.labels("slow_reader")._value.get() == slow_before + 1


async def test_shutdown_answers_in_flight_requests_then_sends_dpr(creditd: Harness, diameter_at: DiameterAt) -> None:
    await creditd.create_account("66811110000", balance=1000)
    async with diameter_at() as front:
        client = await Client.open(front.port)
        try:
            assert result_of(await client.ask(cer())) == 2001
            await client.send(ccr("drain;1", INITIAL, 0, "66811110000", [Service(100, 30)]))
            stopping = asyncio.create_task(front.stop(5.0))
            seen: dict[int, Message] = {}
            while len(seen) < 2:  # the CCR may be read before the DPR is sent, or after
                message = await client.read()
                seen[message.command] = message
                if message.command == Command.DISCONNECT_PEER:
                    assert message.is_request
                    await client.send(message.answer([make(Code.RESULT_CODE, 2001)]))
            assert result_of(seen[Command.CREDIT_CONTROL]) == 2001
            await asyncio.wait_for(stopping, 10)
        finally:
            client.close()


async def test_mutated_kamailio_ccrs_never_kill_the_server_nor_charge(
    creditd: Harness, diameter: DiameterServer
) -> None:
    """No account exists for kamailio's subscriber, so no mutation may write anything."""
    generator = random.Random(31)
    originals = received("CCR")
    before = dump(creditd.redis)
    answered = closed = 0
    for _ in range(300):
        data = bytearray(generator.choice(originals))
        for _ in range(generator.randint(1, 3)):
            position = generator.randrange(20, len(data))  # the header's framing is tested elsewhere
            data[position] ^= 1 << generator.randrange(8)
        client = await Client.open(diameter.port)
        try:
            assert result_of(await client.ask(received("CER")[0])) == 2001
            answer: Message | None = None
            try:
                answer = await client.ask(bytes(data), 5.0)
            except (asyncio.IncompleteReadError, ConnectionError):
                closed += 1
            if answer is not None:
                answered += 1
                assert result_of(answer) != 2001
        finally:
            client.close()
    assert answered > 250
    assert dump(creditd.redis) == before
    async with connected(diameter.port, KAMAILIO_HOST) as client:  # still serving
        assert result_of(await client.ask(request(Command.DEVICE_WATCHDOG, 0, []))) == 2001


async def test_a_cer_without_credit_control_is_5010_and_closed(diameter: DiameterServer) -> None:
    message = cer()
    message.avps = [avp for avp in message.avps if avp.code != Code.VENDOR_SPECIFIC_APPLICATION_ID]
    message.avps.append(make(Code.AUTH_APPLICATION_ID, 16777238))  # Gx only
    client = await Client.open(diameter.port)
    try:
        cea = await client.ask(message)
        assert result_of(cea) == 5010
        assert await client.closed_within(2.0)
    finally:
        client.close()


async def test_connections_beyond_the_limit_are_refused(diameter_at: DiameterAt) -> None:
    async with diameter_at(max_connections=2) as front, connected(front.port), connected(front.port):
        third = await Client.open(front.port)
        try:
            assert await third.closed_within(2.0)
        finally:
            third.close()
