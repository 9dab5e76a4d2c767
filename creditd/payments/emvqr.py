"""EMVCo merchant-presented QR payloads (EMV QRCPS-MPM) in the Thai QR Code Payment form: PromptPay
bill payment (tag 30: AID A000000677010112, biller id, reference 1, reference 2), currency THB
(53: 764), amount (54), country TH (58), merchant name and city (59, 60) and the CRC (63: CRC-16/
CCITT-FALSE, polynomial 0x1021, initial 0xFFFF, over the whole payload up to and including '6304',
as four upper-case hex digits). Every data object is ID (2 digits), length (2 digits), value.

parse_payload reads any payload back into its data objects (templates 26..51 and 62 into their
sub-objects), checking lengths and the CRC; the tests read the published examples with it."""

from __future__ import annotations

import re

BILL_PAYMENT_AID = "A000000677010112"
THB_NUMERIC = "764"
# Reference 1 and 2 of a bill payment: upper-case letters and digits, up to 20 (the banks' apps).
REFERENCE = re.compile(r"^[A-Z0-9]{1,20}$")
TEMPLATES = frozenset({*(str(tag) for tag in range(26, 52)), "62"})


class PayloadError(ValueError):
    pass


def crc16_ccitt(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def data_object(tag: str, value: str) -> str:
    if len(value) > 99 or not value:
        raise PayloadError(f"{tag}: a value of 1..99 characters")
    return f"{tag}{len(value):02d}{value}"


def with_crc(body: str) -> str:
    body += "6304"
    return body + f"{crc16_ccitt(body.encode('ascii')):04X}"


def format_amount(amount_minor: int) -> str:
    return f"{amount_minor // 100}.{amount_minor % 100:02d}"


def bill_payment_payload(
    biller_id: str,
    reference_1: str,
    reference_2: str,
    amount_minor: int,
    merchant_name: str = "",
    merchant_city: str = "",
) -> str:
    """A dynamic (one-time, with amount) PromptPay bill payment payload."""
    if not REFERENCE.match(reference_1) or (reference_2 and not REFERENCE.match(reference_2)):
        raise PayloadError("reference: 1 to 20 of A-Z 0-9")
    account = data_object("00", BILL_PAYMENT_AID) + data_object("01", biller_id) + data_object("02", reference_1)
    if reference_2:
        account += data_object("03", reference_2)
    body = data_object("00", "01") + data_object("01", "12") + data_object("30", account)
    body += data_object("53", THB_NUMERIC) + data_object("54", format_amount(amount_minor)) + data_object("58", "TH")
    if merchant_name:
        body += data_object("59", merchant_name)
    if merchant_city:
        body += data_object("60", merchant_city)
    return with_crc(body)


def data_objects(text: str) -> dict[str, str]:
    """ID -> value of a run of data objects; PayloadError at a malformed or repeated one."""
    found: dict[str, str] = {}
    position = 0
    while position < len(text):
        head = text[position : position + 4]
        if len(head) < 4 or not head.isdigit():
            raise PayloadError(f"at {position}: an ID and a length (4 digits)")
        tag, length = head[:2], int(head[2:])
        value = text[position + 4 : position + 4 + length]
        if len(value) != length or length == 0:
            raise PayloadError(f"{tag}: length {length} runs past the payload")
        if tag in found:
            raise PayloadError(f"{tag}: appears twice")
        found[tag] = value
        position += 4 + length
    return found


def parse_payload(payload: str) -> dict[str, str | dict[str, str]]:
    """The payload's data objects, templates as dicts; PayloadError when the CRC or form is wrong."""
    if not payload.isascii() or len(payload) < 12 or payload[-8:-4] != "6304":
        raise PayloadError("63: the payload must end with the CRC object 6304XXXX")
    if f"{crc16_ccitt(payload[:-4].encode('ascii')):04X}" != payload[-4:].upper():
        raise PayloadError("63: CRC mismatch")
    objects: dict[str, str | dict[str, str]] = {}
    for tag, value in data_objects(payload).items():
        objects[tag] = data_objects(value) if tag in TEMPLATES else value
    if objects.get("00") != "01":
        raise PayloadError("00: payload format indicator must be 01")
    return objects
