"""The portal's gRPC channel to creditd: mutual TLS with its own client certificate (role portal)
when configured, plaintext otherwise (loopback development)."""

from __future__ import annotations

from pathlib import Path

import grpc

from creditd.config.fronts import PortalSettings
from creditd.v1 import creditd_pb2_grpc as pb_grpc

CALL_TIMEOUT_S = 10.0


def open_channel(settings: PortalSettings) -> grpc.aio.Channel:
    if settings.tls_cert_path:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(settings.tls_ca_path).read_bytes() if settings.tls_ca_path else None,
            private_key=Path(settings.tls_key_path).read_bytes(),
            certificate_chain=Path(settings.tls_cert_path).read_bytes(),
        )
        return grpc.aio.secure_channel(settings.server, credentials)
    return grpc.aio.insecure_channel(settings.server)


def self_service(channel: grpc.aio.Channel) -> pb_grpc.SelfServiceStub:
    return pb_grpc.SelfServiceStub(channel)
