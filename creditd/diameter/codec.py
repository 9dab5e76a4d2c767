"""Diameter messages on the wire (RFC 6733 §3, §4): the 20-byte header, AVPs with their flags, vendor id
and padding, Grouped AVPs decoded recursively.

Decoding is strict and bounded: every length is checked against its container, the nesting of Grouped
AVPs is limited, and a fault raises DiameterError carrying the result code the peer is answered with
(5014 for a length, 5004 for a value or a nesting bomb, 5001 for an unknown AVP with its M bit, 3008 for
header bits, 3009 for AVP bits, 5015 for the message length) and the offending AVP for Failed-AVP."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from creditd.diameter.dictionary import Code, Result, Type, type_of, vendor_of

HEADER_BYTES: Final = 20
VERSION: Final = 1
FLAG_REQUEST: Final = 0x80
FLAG_PROXIABLE: Final = 0x40
FLAG_ERROR: Final = 0x20
FLAG_RETRANSMIT: Final = 0x10
AVP_FLAG_VENDOR: Final = 0x80
AVP_FLAG_MANDATORY: Final = 0x40
AVP_FLAG_PROTECTED: Final = 0x20
DEFAULT_MAX_DEPTH: Final = 8
UNSUPPORTED_VERSION: Final = 5011

AvpValue = int | str | bytes | list["Avp"]

_FIXED_BYTES = {Type.UNSIGNED32: 4, Type.INTEGER32: 4, Type.TIME: 4, Type.UNSIGNED64: 8, Type.INTEGER64: 8}
_FORMATS = {
    Type.UNSIGNED32: ">I",
    Type.INTEGER32: ">i",
    Type.TIME: ">I",
    Type.UNSIGNED64: ">Q",
    Type.INTEGER64: ">q",
}


@dataclass(slots=True)
class Avp:
    code: int
    value: AvpValue
    vendor: int = 0
    mandatory: bool = True

    def children(self, code: Code) -> list[Avp]:
        assert isinstance(self.value, list), f"AVP {self.code} is not grouped"
        vendor = vendor_of(code)
        return [avp for avp in self.value if avp.code == code and avp.vendor == vendor]

    def child(self, code: Code) -> Avp | None:
        found = self.children(code)
        return found[0] if found else None


class DiameterError(Exception):
    """A message we cannot accept: answer it with `result` (and Failed-AVP when `failed` is known)."""

    def __init__(self, result: int, message: str, failed: Avp | None = None) -> None:
        super().__init__(message)
        self.result = result
        self.message = message
        self.failed = failed


@dataclass(slots=True)
class Message:
    command: int
    application: int
    flags: int
    hop_by_hop: int
    end_to_end: int
    avps: list[Avp] = field(default_factory=list)

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)

    @property
    def is_retransmit(self) -> bool:
        return bool(self.flags & FLAG_RETRANSMIT)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    def all(self, code: Code) -> list[Avp]:
        vendor = vendor_of(code)
        return [avp for avp in self.avps if avp.code == code and avp.vendor == vendor]

    def first(self, code: Code) -> Avp | None:
        found = self.all(code)
        return found[0] if found else None

    def answer(self, avps: list[Avp], error: bool = False) -> Message:
        flags = (self.flags & FLAG_PROXIABLE) | (FLAG_ERROR if error else 0)
        return Message(self.command, self.application, flags, self.hop_by_hop, self.end_to_end, avps)


def make(code: Code, value: AvpValue) -> Avp:
    """An AVP of the dictionary with its vendor, M bit set."""
    return Avp(int(code), value, vendor_of(code), True)


# ---------------------------------------------------------------------------------------------- encoding


def _value_bytes(avp: Avp) -> bytes:
    value = avp.value
    if isinstance(value, list):
        return b"".join(encode_avp(child) for child in value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    kind = type_of(avp.code, avp.vendor)
    assert kind in _FORMATS, f"AVP {avp.code}/{avp.vendor}: an integer needs a numeric dictionary type"
    return struct.pack(_FORMATS[kind], value)


def encode_avp(avp: Avp) -> bytes:
    data = _value_bytes(avp)
    flags = (AVP_FLAG_VENDOR if avp.vendor else 0) | (AVP_FLAG_MANDATORY if avp.mandatory else 0)
    header_bytes = 12 if avp.vendor else 8
    length = header_bytes + len(data)
    header = struct.pack(">II", avp.code, (flags << 24) | length)
    if avp.vendor:
        header += struct.pack(">I", avp.vendor)
    return header + data + b"\0" * (-length % 4)


def encode(message: Message) -> bytes:
    body = b"".join(encode_avp(avp) for avp in message.avps)
    length = HEADER_BYTES + len(body)
    return (
        struct.pack(
            ">II4sII",
            (VERSION << 24) | length,
            (message.flags << 24) | message.command,
            message.application.to_bytes(4, "big"),
            message.hop_by_hop,
            message.end_to_end,
        )
        + body
    )


# ---------------------------------------------------------------------------------------------- decoding


@dataclass(slots=True, frozen=True)
class Header:
    length: int
    flags: int
    command: int
    application: int
    hop_by_hop: int
    end_to_end: int


def decode_header(data: bytes) -> Header:
    """The header alone: enough to answer a message whose body is refused (or never read)."""
    assert len(data) >= HEADER_BYTES, "the caller reads a whole header"
    version_length, flags_command, application, hop_by_hop, end_to_end = struct.unpack(">IIIII", data[:HEADER_BYTES])
    return Header(
        version_length & 0xFFFFFF, flags_command >> 24, flags_command & 0xFFFFFF, application, hop_by_hop, end_to_end
    )


def check_header(data: bytes, max_message_bytes: int) -> Header:
    """Checks what framing depends on (version, length); raises DiameterError."""
    header = decode_header(data)
    if data[0] != VERSION:
        raise DiameterError(UNSUPPORTED_VERSION, f"version {data[0]}: only 1 is supported")
    if header.length < HEADER_BYTES or header.length % 4:
        raise DiameterError(Result.INVALID_MESSAGE_LENGTH, f"message length {header.length}: not a multiple of 4 >= 20")
    if header.length > max_message_bytes:
        raise DiameterError(Result.INVALID_MESSAGE_LENGTH, f"message length {header.length}: over {max_message_bytes}")
    return header


def decode(data: bytes, max_message_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> Message:
    if len(data) < HEADER_BYTES:
        raise DiameterError(Result.INVALID_MESSAGE_LENGTH, f"{len(data)} bytes: shorter than a header")
    header = check_header(data, max_message_bytes)
    if header.length != len(data):
        raise DiameterError(Result.INVALID_MESSAGE_LENGTH, f"message length {header.length}: {len(data)} bytes given")
    if header.flags & 0x0F or (header.flags & FLAG_REQUEST and header.flags & FLAG_ERROR):
        raise DiameterError(Result.INVALID_HDR_BITS, f"header flags {header.flags:#04x}: reserved or E on a request")
    avps = _decode_avps(memoryview(data)[HEADER_BYTES:], 0, max_depth)
    return Message(header.command, header.application, header.flags, header.hop_by_hop, header.end_to_end, avps)


def _decode_avps(data: memoryview, depth: int, max_depth: int) -> list[Avp]:
    avps: list[Avp] = []
    offset, end = 0, len(data)
    while offset < end:
        if end - offset < 8:
            raise DiameterError(Result.INVALID_AVP_LENGTH, f"{end - offset} trailing bytes: shorter than an AVP header")
        code, flags_length = struct.unpack_from(">II", data, offset)
        flags, length = flags_length >> 24, flags_length & 0xFFFFFF
        vendor = struct.unpack_from(">I", data, offset + 8)[0] if flags & AVP_FLAG_VENDOR and end - offset >= 12 else 0
        header_bytes = 12 if flags & AVP_FLAG_VENDOR else 8
        stub = Avp(code, b"", vendor, bool(flags & AVP_FLAG_MANDATORY))
        if length < header_bytes or offset + length > end or offset + length + (-length % 4) > end:
            raise DiameterError(Result.INVALID_AVP_LENGTH, f"AVP {code}: length {length} does not fit", stub)
        if flags & 0x1F:
            raise DiameterError(Result.INVALID_AVP_BITS, f"AVP {code}: reserved flag bits {flags:#04x}", stub)
        avps.append(_decode_value(stub, data[offset + header_bytes : offset + length], depth, max_depth))
        offset += length + (-length % 4)
    return avps


def _decode_value(avp: Avp, data: memoryview, depth: int, max_depth: int) -> Avp:
    kind = type_of(avp.code, avp.vendor)
    raw = bytes(data)
    if kind is None:
        if avp.mandatory:
            raise DiameterError(
                Result.AVP_UNSUPPORTED, f"AVP {avp.code} (vendor {avp.vendor}): unknown, M bit set", avp
            )
        avp.value = raw
        return avp
    failed = Avp(avp.code, raw, avp.vendor, avp.mandatory)
    if kind == Type.GROUPED:
        if depth >= max_depth:
            raise DiameterError(Result.INVALID_AVP_VALUE, f"AVP {avp.code}: nested deeper than {max_depth}", failed)
        avp.value = _decode_avps(data, depth + 1, max_depth)
    elif kind in _FIXED_BYTES:
        if len(raw) != _FIXED_BYTES[kind]:
            raise DiameterError(Result.INVALID_AVP_LENGTH, f"AVP {avp.code}: {len(raw)} bytes", failed)
        avp.value = struct.unpack(_FORMATS[kind], raw)[0]
    elif kind == Type.UTF8:
        try:
            avp.value = raw.decode()
        except UnicodeDecodeError:
            raise DiameterError(Result.INVALID_AVP_VALUE, f"AVP {avp.code}: not UTF-8", failed) from None
    elif kind == Type.ADDRESS:
        if len(raw) < 2 or (raw[:2] == b"\0\1" and len(raw) != 6) or (raw[:2] == b"\0\2" and len(raw) != 18):
            raise DiameterError(Result.INVALID_AVP_VALUE, f"AVP {avp.code}: not an address", failed)
        avp.value = raw
    else:
        avp.value = raw
    return avp


# ---------------------------------------------------------------------------------------------- values


def integer(avp: Avp | None, field_name: str) -> int:
    if avp is None:
        raise DiameterError(Result.MISSING_AVP, f"{field_name}: missing", make_missing(field_name))
    assert isinstance(avp.value, int), f"{field_name} decodes to an integer"
    return avp.value


def text(avp: Avp | None) -> str:
    if avp is None:
        return ""
    return avp.value if isinstance(avp.value, str) else ""


def make_missing(field_name: str) -> Avp | None:
    """An empty AVP of the missing one's code, for Failed-AVP (RFC 6733 §7.5)."""
    try:
        code = Code[field_name]
    except KeyError:
        return None
    return Avp(int(code), b"", vendor_of(code), True)
