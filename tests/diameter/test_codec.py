"""The Diameter codec: every message of a real kamailio exchange decodes and re-encodes to the same
bytes, and python-diameter (an independent decoder) reads what we encode the same way; malformed input
(bit flips of the real captures, wrong lengths, nesting bombs, unknown M-bit AVPs) raises DiameterError
with the result code the peer is answered with, and nothing else ever escapes the decoder."""

from __future__ import annotations

import random
import struct

import pytest
from diameter.message import Message as ReferenceMessage

from creditd.diameter.codec import (
    FLAG_ERROR,
    FLAG_REQUEST,
    Avp,
    DiameterError,
    Message,
    decode,
    encode,
    encode_avp,
    make,
)
from creditd.diameter.dictionary import Code, Command, Result
from tests.diameter.capture import messages, received

MAX = 65536


def test_the_real_capture_decodes_and_reencodes_byte_for_byte() -> None:
    seen = messages()
    assert [name for _, name, _ in seen][:3] == ["CER", "CEA", "CCR"]
    for _, _, data in seen:
        assert encode(decode(data, MAX)) == data


def test_fields_of_kamailio_ccr_initial() -> None:
    ccr = decode(received("CCR")[0], MAX)
    assert ccr.command == Command.CREDIT_CONTROL and ccr.is_request and ccr.application == 4
    assert ccr.first(Code.CC_REQUEST_TYPE) == make(Code.CC_REQUEST_TYPE, 1)
    assert ccr.first(Code.SERVICE_CONTEXT_ID) == make(Code.SERVICE_CONTEXT_ID, "ext.01.001.8.32260@3gpp.org")
    mscc = ccr.first(Code.MULTIPLE_SERVICES_CREDIT_CONTROL)
    assert mscc is not None
    rsu = mscc.child(Code.REQUESTED_SERVICE_UNIT)
    assert rsu is not None and rsu.child(Code.CC_TIME) == make(Code.CC_TIME, 30)
    information = ccr.first(Code.SERVICE_INFORMATION)
    assert information is not None and information.vendor == 10415
    ims = information.child(Code.IMS_INFORMATION)
    assert ims is not None and ims.child(Code.CALLED_PARTY_ADDRESS) == make(
        Code.CALLED_PARTY_ADDRESS, "sip:1000@127.0.0.1"
    )


def test_python_diameter_reads_what_we_encode() -> None:
    ours = Message(
        Command.CREDIT_CONTROL,
        4,
        0x40,
        7,
        9,
        [
            make(Code.SESSION_ID, "gw;1;2"),
            make(Code.RESULT_CODE, 2001),
            make(
                Code.MULTIPLE_SERVICES_CREDIT_CONTROL,
                [
                    make(Code.GRANTED_SERVICE_UNIT, [make(Code.CC_TOTAL_OCTETS, 5_000_000_000)]),
                    make(Code.RATING_GROUP, 10),
                    make(Code.VOLUME_QUOTA_THRESHOLD, 1000),
                ],
            ),
        ],
    )
    reference = ReferenceMessage.from_bytes(encode(ours))
    assert reference.header.command_code == 272 and reference.header.hop_by_hop_identifier == 7
    assert reference.session_id == "gw;1;2"
    assert reference.result_code == 2001
    mscc = reference.multiple_services_credit_control[0]
    assert mscc.granted_service_unit.cc_total_octets == 5_000_000_000
    assert mscc.rating_group == 10
    assert mscc.volume_quota_threshold == 1000


def _with_body(avps: bytes, flags: int = FLAG_REQUEST) -> bytes:
    length = 20 + len(avps)
    return struct.pack(">II4sII", (1 << 24) | length, (flags << 24) | 272, (4).to_bytes(4, "big"), 1, 2) + avps


def _refusal(data: bytes, max_depth: int = 8) -> DiameterError:
    with pytest.raises(DiameterError) as raised:
        decode(data, MAX, max_depth)
    return raised.value


def test_an_avp_longer_than_its_message_is_5014_with_failed_avp() -> None:
    avp = bytearray(encode_avp(make(Code.SESSION_ID, "abcd")))
    avp[5:8] = (200).to_bytes(3, "big")
    error = _refusal(_with_body(bytes(avp)))
    assert error.result == Result.INVALID_AVP_LENGTH and error.failed is not None and error.failed.code == 263


def test_a_fixed_size_avp_of_the_wrong_size_is_5014() -> None:
    bad = Avp(int(Code.CC_REQUEST_NUMBER), b"\0\0\0\0\0\0\0\1")
    assert _refusal(_with_body(encode_avp(bad))).result == Result.INVALID_AVP_LENGTH


def test_an_unknown_mandatory_avp_is_5001_and_an_optional_one_is_skipped() -> None:
    unknown = encode_avp(Avp(99999, b"x", 0, True))
    error = _refusal(_with_body(unknown))
    assert error.result == Result.AVP_UNSUPPORTED and error.failed is not None and error.failed.code == 99999
    message = decode(_with_body(encode_avp(Avp(99999, b"x", 0, False))), MAX)
    assert message.avps[0].value == b"x"


def test_bad_utf8_is_5004() -> None:
    assert _refusal(_with_body(encode_avp(Avp(263, b"\xff\xfe", 0)))).result == Result.INVALID_AVP_VALUE


def test_a_nesting_bomb_is_refused_at_the_depth_limit() -> None:
    avp = make(Code.RATING_GROUP, 1)
    for _ in range(200):
        avp = make(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, [avp])
    error = _refusal(_with_body(encode_avp(avp)))
    assert error.result == Result.INVALID_AVP_VALUE and "nested" in error.message


def test_header_faults() -> None:
    ccr = received("CCR")[0]
    assert _refusal(ccr[:-4]).result == Result.INVALID_MESSAGE_LENGTH  # length field says more
    assert _refusal(b"\2" + ccr[1:]).result == 5011
    flagged = bytearray(ccr)
    flagged[4] |= FLAG_ERROR
    assert _refusal(bytes(flagged)).result == Result.INVALID_HDR_BITS
    flagged = bytearray(ccr)
    flagged[4] |= 0x01
    assert _refusal(bytes(flagged)).result == Result.INVALID_HDR_BITS
    with pytest.raises(DiameterError) as raised:
        decode(ccr, 512)
    assert raised.value.result == Result.INVALID_MESSAGE_LENGTH


def test_bit_flips_and_truncations_of_real_captures_never_escape_as_anything_else() -> None:
    generator = random.Random(31)
    captures = [data for _, _, data in messages()]
    refused = 0
    for _ in range(20_000):
        data = bytearray(generator.choice(captures))
        for _ in range(generator.randint(1, 4)):
            position = generator.randrange(len(data))
            data[position] ^= 1 << generator.randrange(8)
        if generator.random() < 0.2:
            data = data[: generator.randrange(len(data))]
        try:
            decoded = decode(bytes(data), MAX)
        except DiameterError as error:
            refused += 1
            assert 3000 <= error.result < 6000
            continue
        encode(decoded)  # whatever decodes, encodes
    assert refused > 5_000


def test_random_bytes_never_escape() -> None:
    generator = random.Random(7)
    for _ in range(5_000):
        body = generator.randbytes(generator.randrange(0, 64) * 4)
        try:
            decode(_with_body(body), MAX)
        except DiameterError as error:
            assert 3000 <= error.result < 6000
