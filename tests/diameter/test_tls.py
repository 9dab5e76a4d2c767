"""Diameter over TLS with the gRPC edge's mutual TLS (tests/certificates.py: a CA, a server certificate,
client certificates by role): a gateway's certificate whose identity is its CER's Origin-Host is served;
one claiming another gateway's Origin-Host gets 3010; a certificate without the gateway role, one from
another CA and none at all are refused before any Diameter message is read."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio

from creditd.config.diameter import DiameterPeer
from creditd.config.settings import Settings
from creditd.diameter.codec import make
from creditd.diameter.dictionary import Code, Command
from creditd.diameter.server import DiameterServer
from creditd.store.embedded import EmbeddedRedis
from tests.certificates import ROLES, Pki, make_pki
from tests.diameter.client import INITIAL, Client, Service, ccr, cer, request, result_of
from tests.diameter.conftest import TEST_DIAMETER
from tests.harness import Harness

pytestmark = pytest.mark.asyncio
PEERS = [
    DiameterPeer(origin_host=name, origin_realm="test.local") for name in ("pgw1.test", "pgw2.test", "nobody.test")
]


@pytest_asyncio.fixture
async def tls_front(
    creditd: Harness, redis_server: EmbeddedRedis, settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[DiameterServer, Pki]]:
    pki = make_pki(tmp_path)
    cert, key, ca = pki.server_paths()
    security = msgspec.structs.replace(
        settings.security, tls_cert_path=str(cert), tls_key_path=str(key), tls_client_ca_path=str(ca), roles=ROLES
    )
    diameter = msgspec.structs.replace(TEST_DIAMETER, tls_listen="127.0.0.1:0", peers=PEERS)
    own = msgspec.structs.replace(settings, security=security, diameter=diameter)
    server = DiameterServer(own, redis_server.url, "127.0.0.1:0", creditd.clock)
    await server.start()
    try:
        yield server, pki
    finally:
        await server.stop(2.0)


async def _open(port: int, pki: Pki, tmp_path: Path, client: str | None) -> Client:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=pki.ca.certificate.decode())
    if client is not None:
        pair = pki.clients[client]
        (tmp_path / f"{client}.pem").write_bytes(pair.certificate)
        (tmp_path / f"{client}.key").write_bytes(pair.key)
        context.load_cert_chain(tmp_path / f"{client}.pem", tmp_path / f"{client}.key")
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
    return Client(reader, writer)


async def test_a_gateway_certificate_is_served(
    creditd: Harness, tls_front: tuple[DiameterServer, Pki], tmp_path: Path
) -> None:
    front, pki = tls_front
    await creditd.create_account("66844440000", balance=1_000)
    client = await _open(front.tls_port, pki, tmp_path, "gateway")
    try:
        assert result_of(await client.ask(cer("pgw1.test"))) == 2001
        answer = await client.ask(ccr("tls;1", INITIAL, 0, "66844440000", [Service(100, 30)], host="pgw1.test"))
        assert result_of(answer) == 2001
        dwa = await client.ask(request(Command.DEVICE_WATCHDOG, 0, [], host="pgw1.test"))
        assert dwa.first(Code.RESULT_CODE) == make(Code.RESULT_CODE, 2001)
    finally:
        client.close()


async def test_another_gateways_origin_host_is_3010(tls_front: tuple[DiameterServer, Pki], tmp_path: Path) -> None:
    front, pki = tls_front
    client = await _open(front.tls_port, pki, tmp_path, "gateway")  # pgw1.test's certificate
    try:
        cea = await client.ask(cer("pgw2.test"))
        assert result_of(cea) == 3010 and cea.is_error
        assert await client.closed_within(2.0)
    finally:
        client.close()


@pytest.mark.parametrize("certificate", ["nobody", "stranger", None])
async def test_refused_certificates_get_no_diameter(
    tls_front: tuple[DiameterServer, Pki], tmp_path: Path, certificate: str | None
) -> None:
    front, pki = tls_front
    try:
        client = await _open(front.tls_port, pki, tmp_path, certificate)
    except (ssl.SSLError, ConnectionError):
        return  # refused during the handshake (TLS 1.2)
    try:
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError, ssl.SSLError)):
            await client.ask(cer(f"{certificate}.test"), 5.0)  # TLS 1.3: refused on the first read
    finally:
        client.close()
