"""A small Diameter client over a real TCP socket for the tests (written here, from RFC 6733/8506; the
interop tests use kamailio, nobody's code of ours): CER, requests answered in order, CCR builders."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from creditd.devtools.configs import write_shipped_config
from creditd.diameter.codec import (
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    FLAG_RETRANSMIT,
    HEADER_BYTES,
    Avp,
    Message,
    decode,
    encode,
    make,
)
from creditd.diameter.dictionary import Code, Command

GATEWAY_HOST, GATEWAY_REALM = "pgw.test.local", "test.local"
RO, GY, SMS = "ext.01.001.8.32260@3gpp.org", "32251@3gpp.org", "32274@3gpp.org"
INITIAL, UPDATE, TERMINATE, EVENT = 1, 2, 3, 4
E164, SIP_URI = 0, 2
_ids = itertools.count(1000)


def request(command: Command, application: int, avps: list[Avp], host: str = GATEWAY_HOST) -> Message:
    number = next(_ids)
    head = [make(Code.ORIGIN_HOST, host), make(Code.ORIGIN_REALM, GATEWAY_REALM)]
    session = [avp for avp in avps if avp.code == Code.SESSION_ID]
    rest = [avp for avp in avps if avp.code != Code.SESSION_ID]
    return Message(command, application, FLAG_REQUEST | FLAG_PROXIABLE, number, number, session + head + rest)


def cer(host: str = GATEWAY_HOST, host_ip: bool = True) -> Message:
    avps = [make(Code.HOST_IP_ADDRESS, b"\0\1\x7f\0\0\1")] if host_ip else []
    avps += [
        make(Code.VENDOR_ID, 10415),
        make(Code.PRODUCT_NAME, "test-client"),
        make(Code.VENDOR_SPECIFIC_APPLICATION_ID, [make(Code.VENDOR_ID, 10415), make(Code.AUTH_APPLICATION_ID, 4)]),
    ]
    return request(Command.CAPABILITIES_EXCHANGE, 0, avps, host)


@dataclass(frozen=True)
class Service:
    """One MSCC: units are (CC-Time | CC-Total-Octets | CC-Service-Specific-Units) by `unit`."""

    rating_group: int | None
    requested: int | None = None
    used: int | None = None
    unit: Code = Code.CC_TIME
    service_id: int = 0
    used_after_change: int = 0


def mscc(service: Service) -> Avp:
    children: list[Avp] = []
    if service.requested is not None:
        amount = [] if service.requested == 0 else [make(service.unit, service.requested)]
        children.append(make(Code.REQUESTED_SERVICE_UNIT, amount))
    if service.used is not None:
        before = service.used - service.used_after_change
        children.append(make(Code.USED_SERVICE_UNIT, [make(service.unit, before)]))
        if service.used_after_change:
            after = [make(service.unit, service.used_after_change), make(Code.TARIFF_CHANGE_USAGE, 1)]
            children.append(make(Code.USED_SERVICE_UNIT, after))
    if service.service_id:
        children.append(make(Code.SERVICE_IDENTIFIER, service.service_id))
    if service.rating_group is not None:
        children.append(make(Code.RATING_GROUP, service.rating_group))
    return make(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, children)


def ccr(
    session_id: str,
    kind: int,
    number: int,
    subscriber: str,
    services: Sequence[Service],
    context: str = RO,
    called: str = "sip:66812345678@ims.test.local",
    subscription_type: int = E164,
    extra: Sequence[Avp] = (),
    host: str = GATEWAY_HOST,
) -> Message:
    avps = [
        make(Code.SESSION_ID, session_id),
        make(Code.DESTINATION_REALM, "creditd.test"),
        make(Code.AUTH_APPLICATION_ID, 4),
        make(Code.SERVICE_CONTEXT_ID, context),
        make(Code.CC_REQUEST_TYPE, kind),
        make(Code.CC_REQUEST_NUMBER, number),
        make(
            Code.SUBSCRIPTION_ID,
            [make(Code.SUBSCRIPTION_ID_TYPE, subscription_type), make(Code.SUBSCRIPTION_ID_DATA, subscriber)],
        ),
        make(Code.MULTIPLE_SERVICES_INDICATOR, 1),
        *[mscc(service) for service in services],
        *extra,
    ]
    if context == RO and called:
        ims = make(Code.IMS_INFORMATION, [make(Code.CALLED_PARTY_ADDRESS, called)])
        avps.append(make(Code.SERVICE_INFORMATION, [ims]))
    return request(Command.CREDIT_CONTROL, 4, avps, host)


def retransmitted(message: Message) -> Message:
    return Message(
        message.command,
        message.application,
        message.flags | FLAG_RETRANSMIT,
        message.hop_by_hop,
        message.end_to_end,
        message.avps,
    )


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last_bytes = b""

    @classmethod
    async def open(cls, port: int, receive_buffer_bytes: int = 0) -> Client:
        sock = socket.socket()
        if receive_buffer_bytes:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    async def send(self, message: Message | bytes) -> None:
        self.writer.write(message if isinstance(message, bytes) else encode(message))
        await self.writer.drain()

    async def read(self, timeout_s: float = 10.0) -> Message:
        head = await asyncio.wait_for(self.reader.readexactly(HEADER_BYTES), timeout_s)
        length = int.from_bytes(head[1:4], "big")
        rest = await asyncio.wait_for(self.reader.readexactly(length - HEADER_BYTES), timeout_s)
        self.last_bytes = head + rest
        return decode(self.last_bytes, 1 << 24)

    async def ask(self, message: Message | bytes, timeout_s: float = 10.0) -> Message:
        await self.send(message)
        return await self.read(timeout_s)

    async def closed_within(self, timeout_s: float) -> bool:
        """True when the server closes the connection within timeout_s (anything it sends is skipped)."""
        try:
            async with asyncio.timeout(timeout_s):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    def close(self) -> None:
        self.writer.transport.abort()


@contextlib.asynccontextmanager
async def connected(port: int, host: str = GATEWAY_HOST) -> AsyncIterator[Client]:
    """A client past its CER (the CEA checked to be 2001)."""
    client = await Client.open(port)
    try:
        cea = await client.ask(cer(host))
        result = cea.first(Code.RESULT_CODE)
        assert result is not None and result.value == 2001, cea
        yield client
    finally:
        client.close()


def result_of(message: Message) -> int:
    found = message.first(Code.RESULT_CODE)
    assert found is not None and isinstance(found.value, int), message
    return found.value


def grants(message: Message) -> dict[int, Avp]:
    """MSCCs of an answer by Rating-Group."""
    found = {}
    for avp in message.all(Code.MULTIPLE_SERVICES_CREDIT_CONTROL):
        group = avp.child(Code.RATING_GROUP)
        found[group.value if group else 0] = avp
    return found  # type: ignore[return-value]


def granted(mscc_avp: Avp, unit: Code = Code.CC_TIME) -> int:
    gsu = mscc_avp.child(Code.GRANTED_SERVICE_UNIT)
    assert gsu is not None, mscc_avp
    amount = gsu.child(unit)
    assert amount is not None and isinstance(amount.value, int), gsu
    return amount.value


def config_with_peer(directory: Path, port: int, metrics_port: int) -> Path:
    """The shipped config with a [diameter] table that lets this client (GATEWAY_HOST) in."""
    diameter = f"""
[diameter]
listen = "127.0.0.1:{port}"
origin_host = "creditd.test"
origin_realm = "test"
metrics_listen = "127.0.0.1:{metrics_port}"
peers = [{{ origin_host = "{GATEWAY_HOST}", origin_realm = "{GATEWAY_REALM}" }}]
"""
    return write_shipped_config(directory / f"creditd-{port}.toml", diameter)
