"""The [diameter] table of the configuration: `creditd diameter`, the Gy/Ro front end (creditd/diameter/).
docs/diameter.md explains each option; creditd/settings.py reads this table."""

from __future__ import annotations

from typing import Annotated

import msgspec

from creditd.config.types import Struct

DiameterIdentity = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,255}$")]


class DiameterPeer(Struct, frozen=True):
    """A client allowed to connect (its CER's Origin-Host and Origin-Realm); anyone else gets
    DIAMETER_UNKNOWN_PEER. Its Origin-Host is the gateway_id of its sessions."""

    origin_host: DiameterIdentity
    origin_realm: DiameterIdentity


class DiameterSettings(Struct, frozen=True):
    listen: str = "127.0.0.1:3868"
    # Diameter over TLS (mutual, [security]'s certificates and roles), e.g. "0.0.0.0:5868"; empty: none.
    tls_listen: str = ""
    origin_host: DiameterIdentity = "creditd.localdomain"
    origin_realm: DiameterIdentity = "localdomain"
    peers: Annotated[list[DiameterPeer], msgspec.Meta(max_length=1000)] = msgspec.field(default_factory=list)
    # A message announcing more is answered DIAMETER_INVALID_MESSAGE_LENGTH and its connection closed.
    max_message_bytes: Annotated[int, msgspec.Meta(ge=1024, le=16 * 1024 * 1024)] = 65536
    # Grouped AVPs nested deeper are refused (DIAMETER_INVALID_AVP_VALUE).
    max_avp_depth: Annotated[int, msgspec.Meta(ge=2, le=32)] = 8
    # RFC 3539 Tw: a DWR after this long without traffic; no answer within another Tw closes.
    watchdog_interval_s: Annotated[float, msgspec.Meta(ge=0.1, le=300)] = 30.0
    # A connection that sends no CER within this, or stalls inside a message this long, is closed.
    handshake_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    # A peer that does not read our answers within this (a full socket buffer) is closed.
    write_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 10.0
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 256
    # Requests of one connection being served at once; the next waits (its bytes stay unread).
    max_in_flight_per_connection: Annotated[int, msgspec.Meta(ge=1, le=65536)] = 256
    # On shutdown: answer what is in flight within this, then DPR.
    drain_timeout_s: Annotated[float, msgspec.Meta(ge=0, le=600)] = 10.0
    # Seconds taken off a final time grant (docs/diameter.md, "The last grant"): a client that
    # overshoots its grant by up to this stays within what was reserved.
    final_grant_margin_s: Annotated[int, msgspec.Meta(ge=0, le=60)] = 1
    # Rating-Group on the wire -> creditd rating group; a value not listed is used as it is.
    rating_groups: Annotated[dict[str, int], msgspec.Meta(max_length=256)] = msgspec.field(default_factory=dict)
    # The rating group of an Ro (IMS voice) MSCC without a Rating-Group.
    voice_rating_group: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 2
    # Country code prepended to a national-format number (one leading 0); empty: no such numbers.
    country_code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{0,3}$")] = ""
    # The Prometheus endpoint of `creditd diameter` (HOST:PORT); empty: none.
    metrics_listen: str = ""
