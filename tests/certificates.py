"""Test certificates, made fresh for each test session with `cryptography`: a CA, a server certificate
for localhost, client certificates for each role and one mapped to none, and a stranger's signed by
another CA."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_FOR = datetime.timedelta(days=2)


class Pair(msgspec.Struct, frozen=True):
    certificate: bytes
    key: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str) -> tuple[Pair, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key, now = _key(), datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Pair(certificate.public_bytes(serialization.Encoding.PEM), _pem_key(key)), key, certificate


def issue(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, common_name: str, server: bool = False) -> Pair:
    key, now = _key(), datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(common_name)]
    if server:
        names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return Pair(certificate.public_bytes(serialization.Encoding.PEM), _pem_key(key))


class Pki(msgspec.Struct):
    directory: Path
    ca: Pair
    server: Pair
    clients: dict[str, Pair]

    def server_paths(self) -> tuple[Path, Path, Path]:
        paths = (self.directory / "server.pem", self.directory / "server.key", self.directory / "ca.pem")
        for path, data in zip(paths, (self.server.certificate, self.server.key, self.ca.certificate), strict=True):
            path.write_bytes(data)
        return paths


CLIENTS = {
    "gateway": "pgw1.test",
    "gateway2": "pgw2.test",
    "topup": "bank.test",
    "portal": "portal.test",
    "crm": "crm.test",
    "care": "console.test",
    "admin": "ops.test",
    "nobody": "nobody.test",
}
ROLES = {
    "gateway": ["pgw1.test", "pgw2.test"],
    "topup": ["bank.test"],
    "crm": ["crm.test"],
    "care": ["console.test"],
    "portal": ["portal.test"],
    "admin": ["ops.test"],
}


def make_pki(directory: Path, ca_name: str = "creditd test CA") -> Pki:
    """Two PKIs meant to be told apart need CAs of different names: a verifier looks a certificate's
    issuer up by name, and one signed by a namesake CA fails on its signature (alert decrypt_error),
    not as unknown (unknown_ca)."""
    ca, ca_key, ca_certificate = make_ca(ca_name)
    _, other_key, other_certificate = make_ca("someone else's CA")
    clients = {role: issue(ca_key, ca_certificate, name) for role, name in CLIENTS.items()}
    clients["stranger"] = issue(other_key, other_certificate, CLIENTS["gateway"])
    return Pki(directory, ca, issue(ca_key, ca_certificate, "creditd.test", server=True), clients)
