"""Who is charged and for what destination, from the identities a CCR carries (docs/diameter.md,
"Identities").

The account id rule: the first Subscription-Id in the order END_USER_E164, END_USER_SIP_URI, END_USER_IMSI,
END_USER_NAI, END_USER_PRIVATE (User-Name when there is none) becomes the account id:
- a number (E164, or the user part of a sip:/tel: URI that is a number) becomes E.164 digits: visual
  separators (- . space parentheses) and a leading + dropped, an international prefix 00 dropped, a
  national number (one leading 0) given the configured country code;
- any other SIP URI or NAI: its user part (before @, without ;parameters); IMSI and PRIVATE: as sent.
The called party: Called-Party-Address (IMS), else Recipient-Address/Address-Data (SMS), else, for Ro
only, Called-Station-Id (on Gy it names the APN): the same number rule, E.164 digits. The visited
network: 3GPP-SGSN-MCC-MNC (top level or in PS-Information), else the MCC+MNC of 3GPP-User-Location-Info;
neither: empty (the home network)."""

from __future__ import annotations

import re

from creditd.diameter.codec import Avp, DiameterError, Message, text
from creditd.diameter.dictionary import Code, Result

END_USER_E164, END_USER_IMSI, END_USER_SIP_URI, END_USER_NAI, END_USER_PRIVATE = 0, 1, 2, 3, 4
PREFERENCE = (END_USER_E164, END_USER_SIP_URI, END_USER_IMSI, END_USER_NAI, END_USER_PRIVATE)
SEPARATORS = re.compile(r"[-. ()]")
NUMBER = re.compile(r"\+?[0-9]{1,20}")
PLMN = re.compile(r"[0-9]{5,6}")


def user_part(uri: str) -> str:
    """'sip:+4917@test.local;user=phone' -> '+4917'; 'tel:+66-81;phone-context=x' -> '+66-81'."""
    rest = uri.split(":", 1)[1] if uri[:4].lower() in ("sip:", "tel:") or uri[:5].lower() == "sips:" else uri
    return rest.split("@", 1)[0].split(";", 1)[0]


def e164_digits(number: str, country_code: str) -> str | None:
    """E.164 digits of a dialled or subscriber number, or None if it is not a number."""
    compact = SEPARATORS.sub("", number)
    if not NUMBER.fullmatch(compact):
        return None
    if compact.startswith("+"):
        return compact[1:]
    if compact.startswith("00"):
        return compact[2:]
    if compact.startswith("0") and country_code:
        return country_code + compact[1:]
    return compact


def _identity(kind: int, data: str, country_code: str) -> str:
    if kind == END_USER_E164:
        return e164_digits(data, country_code) or data
    if kind == END_USER_SIP_URI:
        user = user_part(data)
        return e164_digits(user, country_code) or user
    if kind == END_USER_NAI:
        return data.split("@", 1)[0]
    return data


def account_id(request: Message, country_code: str) -> tuple[str, Avp | None]:
    """The account id and the AVP it came from (for Failed-AVP); raises 5005 when there is none."""
    found: dict[int, tuple[str, Avp]] = {}
    for avp in request.all(Code.SUBSCRIPTION_ID):
        kind_avp, data_avp = avp.child(Code.SUBSCRIPTION_ID_TYPE), avp.child(Code.SUBSCRIPTION_ID_DATA)
        if kind_avp is None or data_avp is None or not isinstance(kind_avp.value, int):
            raise DiameterError(Result.MISSING_AVP, "Subscription-Id: needs a type and data", avp)
        found.setdefault(kind_avp.value, (text(data_avp), avp))
    for kind in PREFERENCE:
        if kind in found:
            data, avp = found[kind]
            return _identity(kind, data, country_code), avp
    user_name = request.first(Code.USER_NAME)
    if user_name is not None:
        return _identity(END_USER_SIP_URI, text(user_name), country_code), user_name
    raise DiameterError(Result.MISSING_AVP, "Subscription-Id: missing", Avp(int(Code.SUBSCRIPTION_ID), b""))


def _nested(request: Message, path: tuple[Code, ...]) -> Avp | None:
    node = request.first(path[0])
    for code in path[1:]:
        if node is None or not isinstance(node.value, list):
            return None
        node = node.child(code)
    return node


def called_party(request: Message, voice: bool, country_code: str) -> tuple[str, Avp | None]:
    """E.164 digits of the other party ('' when none), and the AVP it came from."""
    information = (Code.SERVICE_INFORMATION,)
    candidates = [
        _nested(request, (*information, Code.IMS_INFORMATION, Code.CALLED_PARTY_ADDRESS)),
        _nested(request, (*information, Code.SMS_INFORMATION, Code.RECIPIENT_INFO, Code.RECIPIENT_ADDRESS)),
        _nested(request, (*information, Code.SMS_INFORMATION, Code.RECIPIENT_ADDRESS)),
        request.first(Code.RECIPIENT_ADDRESS),
    ]
    if voice:
        candidates.append(request.first(Code.CALLED_STATION_ID))
    for avp in candidates:
        if avp is None:
            continue
        value = text(avp.child(Code.ADDRESS_DATA)) if isinstance(avp.value, list) else text(avp)
        digits = e164_digits(user_part(value), country_code)
        if digits is None:
            raise DiameterError(Result.INVALID_AVP_VALUE, f"{value!r}: not a telephone number", avp)
        return digits, avp
    return "", None


def plmn_of_location(data: bytes) -> str | None:
    """MCC+MNC of a 3GPP-User-Location-Info (TS 29.061 §16.4.7.2): a location type octet, then the
    MCC and MNC as TBCD (filler F for a 2-digit MNC); None when it is not that shape."""
    if len(data) < 4:
        return None
    octets = data[1:4]
    digits = [octets[0] & 0xF, octets[0] >> 4, octets[1] & 0xF, octets[2] & 0xF, octets[2] >> 4, octets[1] >> 4]
    if digits[5] == 0xF:
        digits = digits[:5]
    if any(digit > 9 for digit in digits):
        return None
    return "".join(str(digit) for digit in digits)


def visited_plmn(request: Message) -> tuple[str, Avp | None]:
    """3GPP-SGSN-MCC-MNC (top level or in PS-Information), else the PLMN of 3GPP-User-Location-Info."""
    for avp in (
        request.first(Code.SGSN_MCC_MNC),
        _nested(request, (Code.SERVICE_INFORMATION, Code.PS_INFORMATION, Code.SGSN_MCC_MNC)),
    ):
        if avp is not None:
            value = text(avp)
            if not PLMN.fullmatch(value):
                raise DiameterError(Result.INVALID_AVP_VALUE, f"3GPP-SGSN-MCC-MNC {value!r}: 5 or 6 digits", avp)
            return value, avp
    for avp in (
        request.first(Code.USER_LOCATION_INFO),
        _nested(request, (Code.SERVICE_INFORMATION, Code.PS_INFORMATION, Code.USER_LOCATION_INFO)),
    ):
        if avp is not None and isinstance(avp.value, bytes):
            plmn = plmn_of_location(avp.value)
            if plmn is None:
                raise DiameterError(Result.INVALID_AVP_VALUE, "3GPP-User-Location-Info: no MCC/MNC", avp)
            return plmn, avp
    return "", None
