"""The front's pure rules, without a server (cheap): which Subscription-Id names the account (E.164 over
SIP URI over IMSI over NAI, User-Name when there is none, national numbers given the country code, none
at all 5005), reserved AVP flag bits answered 3009, a plan's RESTRICT_ACCESS final unit action spelled
Final-Unit-Action 2, and CC-Money read as whole minor units of the account's currency (exponents either
way, the Currency-Code checked, fractions and non-positive amounts refused with the AVP named), and every
plan currency of the shipped config has an ISO 4217 numeric code here."""

from __future__ import annotations

import struct

import pytest

from creditd.config.settings import load_settings
from creditd.diameter import events
from creditd.diameter.codec import FLAG_REQUEST, Avp, DiameterError, Message, decode, encode_avp, make
from creditd.diameter.credit import _final_unit
from creditd.diameter.dictionary import CURRENCY_CODES, Code, Command, Result
from creditd.diameter.identity import account_id
from creditd.resources import default_config_path
from creditd.store.replies import GrantRecord

E164, IMSI, SIP_URI, NAI = 0, 1, 2, 3


def _subscriber(*ids: tuple[int, str], user_name: str = "") -> Message:
    avps = [
        make(Code.SUBSCRIPTION_ID, [make(Code.SUBSCRIPTION_ID_TYPE, kind), make(Code.SUBSCRIPTION_ID_DATA, data)])
        for kind, data in ids
    ]
    if user_name:
        avps.append(make(Code.USER_NAME, user_name))
    return Message(Command.CREDIT_CONTROL, 4, FLAG_REQUEST, 1, 1, avps)


@pytest.mark.parametrize(
    ("ids", "user_name", "account"),
    [
        ([(IMSI, "520031234567890"), (E164, "+66 81 111 0000")], "", "66811110000"),  # E.164 first, whatever order
        ([(NAI, "bob@realm"), (IMSI, "520031234567890")], "", "520031234567890"),
        ([(NAI, "bob@ims.example;x=1")], "", "bob"),
        ([(SIP_URI, "sip:alice@ims.example")], "", "alice"),
        ([(E164, "0811110000")], "", "66811110000"),  # national: the country code added
        ([], "carol", "carol"),
    ],
)
def test_the_account_id_rule(ids: list[tuple[int, str]], user_name: str, account: str) -> None:
    assert account_id(_subscriber(*ids, user_name=user_name), "66")[0] == account


def test_no_subscriber_at_all_is_5005() -> None:
    with pytest.raises(DiameterError) as raised:
        account_id(_subscriber(), "66")
    assert raised.value.result == Result.MISSING_AVP


def test_reserved_avp_flag_bits_are_3009() -> None:
    avp = bytearray(encode_avp(make(Code.SESSION_ID, "s;1")))
    avp[4] |= 0x01  # a reserved bit of the AVP flags
    length = 20 + len(avp)
    data = struct.pack(">II4sII", (1 << 24) | length, (FLAG_REQUEST << 24) | 272, (4).to_bytes(4, "big"), 1, 2)
    with pytest.raises(DiameterError) as raised:
        decode(data + bytes(avp), 65536)
    assert raised.value.result == Result.INVALID_AVP_BITS and raised.value.failed is not None


def test_restrict_access_is_final_unit_action_2() -> None:
    grant = GrantRecord(2, 2001, 1, 0, 60, 3, "", 0, 0, 0)  # the store's RESTRICT_ACCESS is 3
    fui = _final_unit(grant)
    assert fui.child(Code.FINAL_UNIT_ACTION) == make(Code.FINAL_UNIT_ACTION, 2)


def _cc_money(digits: int, exponent: int | None, currency: int | None = 764) -> Avp:
    value = [make(Code.VALUE_DIGITS, digits)] + ([make(Code.EXPONENT, exponent)] if exponent is not None else [])
    return make(
        Code.CC_MONEY, [make(Code.UNIT_VALUE, value)] + ([make(Code.CURRENCY_CODE, currency)] * (currency is not None))
    )


@pytest.mark.parametrize(
    ("digits", "exponent", "currency", "minor"),
    [(250, -2, 764, 250), (25, -1, None, 250), (3, None, 764, 300), (3, 1, 764, 3000), (2500, -3, 764, 250)],
)
def test_cc_money_in_minor_units(digits: int, exponent: int | None, currency: int | None, minor: int) -> None:
    assert events._money(_cc_money(digits, exponent, currency), "THB") == minor


@pytest.mark.parametrize(
    ("digits", "exponent", "currency", "result"),
    [(1, -3, 764, 5004), (0, -2, 764, 5004), (-5, -2, 764, 5004), (250, -2, 840, 5004), (1, 19, 764, 5004)],
)
def test_cc_money_refused(digits: int, exponent: int, currency: int, result: int) -> None:
    with pytest.raises(DiameterError) as raised:
        events._money(_cc_money(digits, exponent, currency), "THB")
    assert raised.value.result == result and raised.value.failed is not None


def test_cost_information_of_a_currency_without_minor_units() -> None:
    cost = events.cost_information(500, "JPY")
    unit_value = cost.child(Code.UNIT_VALUE)
    assert unit_value is not None and unit_value.child(Code.EXPONENT) == make(Code.EXPONENT, 0)
    with pytest.raises(DiameterError) as raised:
        events.cost_information(500, "XTS")
    assert raised.value.result == Result.UNABLE_TO_COMPLY


def test_every_shipped_plan_currency_has_a_currency_code() -> None:
    shipped = load_settings(default_config_path())
    assert {plan.currency for plan in shipped.plans.values()} <= set(CURRENCY_CODES)
