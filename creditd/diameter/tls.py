"""Diameter over TLS (RFC 6733 §13, TLS from the first byte on its own port, 5868 by convention) with the
gRPC edge's mutual TLS: the same server certificate, client CA and roles ([security]). A peer's
certificate must name (common name or DNS subject alternative name) an identity holding the gateway or
admin role, and its CER's Origin-Host must be one of its certificate's identities: a peer cannot speak
for another gateway's sessions."""

from __future__ import annotations

import ssl
from typing import Any

from creditd.config.settings import SecuritySettings
from creditd.errors import ConfigError

ROLES_ALLOWED = ("gateway", "admin")


def server_context(security: SecuritySettings) -> ssl.SSLContext:
    if not security.tls:
        raise ConfigError("diameter.tls_listen: needs [security] tls_cert_path, tls_key_path and tls_client_ca_path")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(security.tls_cert_path, security.tls_key_path)
        context.load_verify_locations(security.tls_client_ca_path)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"security: cannot load the TLS files: {error}") from None
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def identities(peer_certificate: dict[str, Any] | None) -> frozenset[str]:
    """The common name and DNS subject alternative names of a verified peer certificate."""
    if not peer_certificate:
        return frozenset()
    names = {value for field in peer_certificate.get("subject", ()) for key, value in field if key == "commonName"}
    names |= {value for kind, value in peer_certificate.get("subjectAltName", ()) if kind == "DNS"}
    return frozenset(names)


def allowed(names: frozenset[str], security: SecuritySettings) -> bool:
    return any(name in security.roles.get(role, ()) for role in ROLES_ALLOWED for name in names)  # type: ignore[call-overload]
