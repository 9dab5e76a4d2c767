"""The portal's gRPC channel to creditd: mutual TLS with its own client certificate (role portal)
when configured, plaintext otherwise (loopback development)."""

from __future__ import annotations

import grpc

from creditd import client_channel
from creditd.config.fronts import PortalSettings
from creditd.v1 import creditd_pb2_grpc as pb_grpc

CALL_TIMEOUT_S = 10.0


def open_channel(settings: PortalSettings) -> grpc.aio.Channel:
    return client_channel.open_channel(
        settings.server, settings.tls_ca_path, settings.tls_cert_path, settings.tls_key_path
    )


def self_service(channel: grpc.aio.Channel) -> pb_grpc.SelfServiceStub:
    return pb_grpc.SelfServiceStub(channel)
