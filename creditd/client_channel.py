"""The gRPC channel from one of creditd's own front ends (the portal, the care console) to creditd:
mutual TLS with the front end's client certificate when it has one (its name maps to its role in
[security.roles]), plaintext otherwise (loopback development, where the server treats every caller
as admin)."""

from __future__ import annotations

from pathlib import Path

import grpc


def open_channel(server: str, ca_path: str = "", cert_path: str = "", key_path: str = "") -> grpc.aio.Channel:
    """ca_path empty: the system's roots verify the server."""
    if not cert_path:
        return grpc.aio.insecure_channel(server)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(ca_path).read_bytes() if ca_path else None,
        private_key=Path(key_path).read_bytes(),
        certificate_chain=Path(cert_path).read_bytes(),
    )
    return grpc.aio.secure_channel(server, credentials)
