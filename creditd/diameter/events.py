"""One-time events (RFC 8506 §6) other than DIRECT_DEBITING (a charge, credit.py): CHECK_BALANCE
answers whether the account could pay now; PRICE_ENQUIRY what the MSCCs' units would cost now at the
subscriber's tariffs (the core's quote, lua/functions/quote_price.lua: the rating rules stay in Lua);
REFUND_ACCOUNT credits money back to the account through the core's idempotent adjustment, keyed by
(gateway, Session-Id, CC-Request-Number), so a retransmission on any front process credits nothing
more. Money is spelled as Cost-Information / CC-Money (Unit-Value {Value-Digits, Exponent},
Currency-Code: ISO 4217 numeric, the exponent that of the currency's minor unit)."""

from __future__ import annotations

import hashlib

from babel.numbers import get_currency_precision

from creditd.config.diameter import DiameterSettings
from creditd.diameter.codec import Avp, DiameterError, Message, integer, make
from creditd.diameter.credit import EVENT, Ask, base_answer
from creditd.diameter.dictionary import CREDIT_CONTROL_APPLICATION, CURRENCY_CODES, Code, Result
from creditd.store.replies import AccountRecord, QuotedUnitRecord, QuoteRecord

DIRECT_DEBITING, REFUND_ACCOUNT, CHECK_BALANCE, PRICE_ENQUIRY = 0, 1, 2, 3
REQUESTED_ACTIONS = (DIRECT_DEBITING, REFUND_ACCOUNT, CHECK_BALANCE, PRICE_ENQUIRY)
ENOUGH_CREDIT, NO_CREDIT = 0, 1
ACTIVE = 1
# An Exponent beyond this (either sign) cannot name an amount of minor units within max_amount_minor.
MAX_EXPONENT = 18


def requested_action(request: Message, request_type: int) -> int:
    """An EVENT's Requested-Action (DIRECT_DEBITING when absent); DIRECT_DEBITING for session requests."""
    action = request.first(Code.REQUESTED_ACTION)
    if request_type != EVENT or action is None:
        return DIRECT_DEBITING
    value = integer(action, "REQUESTED_ACTION")
    if value not in REQUESTED_ACTIONS:
        raise DiameterError(Result.INVALID_AVP_VALUE, f"Requested-Action {value}: not one of RFC 8506's", action)
    return value


def require_services(request: Message) -> None:
    """A price enquiry or refund names what it is about in Multiple-Services-Credit-Control."""
    if not request.all(Code.MULTIPLE_SERVICES_CREDIT_CONTROL):
        raise DiameterError(
            Result.MISSING_AVP,
            "Multiple-Services-Credit-Control: required (the services to price or refund)",
            make(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, []),
        )


def _event_answer(request: Message, ask_: Ask, settings: DiameterSettings, result: int, avps: list[Avp]) -> Message:
    head = base_answer(request, settings, result)
    head += [
        make(Code.AUTH_APPLICATION_ID, CREDIT_CONTROL_APPLICATION),
        make(Code.CC_REQUEST_TYPE, ask_.request_type),
        make(Code.CC_REQUEST_NUMBER, ask_.request_number),
    ]
    return request.answer(head + avps)


def _echo(ask_: Ask, rating_group: int, result: int) -> Avp:
    """An MSCC of the answer: the Rating-Group and Service-Identifier as sent, and its Result-Code."""
    wire_group, service_id = ask_.wire_groups.get(rating_group, (rating_group, 0))
    children = [make(Code.SERVICE_IDENTIFIER, service_id)] if service_id else []
    if wire_group:
        children.append(make(Code.RATING_GROUP, wire_group))
    children.append(make(Code.RESULT_CODE, result))
    return make(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, children)


def _currency_code(currency: str) -> int:
    code = CURRENCY_CODES.get(currency)
    if code is None:
        raise DiameterError(Result.UNABLE_TO_COMPLY, f"currency {currency!r}: no ISO 4217 numeric code known here")
    return code


def _minor_digits(currency: str) -> int:
    """Decimal digits of the currency's minor unit (2 for THB: amounts are satang)."""
    return int(get_currency_precision(currency))


def cost_information(amount_minor: int, currency: str) -> Avp:
    """Cost-Information (RFC 8506 §8.7) of an amount in minor units of the currency."""
    unit_value = [make(Code.VALUE_DIGITS, amount_minor), make(Code.EXPONENT, -_minor_digits(currency))]
    return make(
        Code.COST_INFORMATION, [make(Code.UNIT_VALUE, unit_value), make(Code.CURRENCY_CODE, _currency_code(currency))]
    )


def balance_answer(request: Message, ask_: Ask, account: AccountRecord, settings: DiameterSettings) -> Message:
    """CHECK_BALANCE (RFC 8506 §6.2): whether the account could pay now; nothing reserved or debited."""
    available = account.balance - account.reserved + account.credit_limit
    enough = account.status == ACTIVE and available > 0
    result = make(Code.CHECK_BALANCE_RESULT, ENOUGH_CREDIT if enough else NO_CREDIT)
    return _event_answer(request, ask_, settings, Result.SUCCESS, [result])


def price_answer(request: Message, ask_: Ask, quote: QuoteRecord, settings: DiameterSettings) -> Message:
    """PRICE_ENQUIRY (RFC 8506 §6.1): the units' total cost in Cost-Information, an MSCC per service with
    its own Result-Code. A service no tariff prices makes the answer 5031 RATING_FAILED, without a
    partial total."""
    msccs = [_echo(ask_, unit.rating_group, unit.result) for unit in quote.units]
    if quote.result != Result.SUCCESS:
        error = make(Code.ERROR_MESSAGE, quote.error[:200])
        return _event_answer(request, ask_, settings, quote.result, [error, *msccs])
    total = sum(unit.price_minor for unit in quote.units)
    return _event_answer(request, ask_, settings, Result.SUCCESS, [cost_information(total, quote.currency), *msccs])


# ---------------------------------------------------------------------------------------------- refund


def _money(cc_money: Avp, currency: str) -> int:
    """CC-Money (RFC 8506 §8.22) in minor units of the plan's currency: whole minor units, above 0."""
    unit_value = cc_money.child(Code.UNIT_VALUE)
    if unit_value is None:
        raise DiameterError(Result.MISSING_AVP, "CC-Money: Unit-Value missing", make(Code.UNIT_VALUE, []))
    digits = integer(unit_value.child(Code.VALUE_DIGITS), "VALUE_DIGITS")
    exponent_avp = unit_value.child(Code.EXPONENT)
    exponent = integer(exponent_avp, "EXPONENT") if exponent_avp is not None else 0
    if abs(exponent) > MAX_EXPONENT:
        raise DiameterError(Result.INVALID_AVP_VALUE, f"Exponent: within ±{MAX_EXPONENT}", exponent_avp)
    currency_avp = cc_money.child(Code.CURRENCY_CODE)
    if currency_avp is not None and integer(currency_avp, "CURRENCY_CODE") != _currency_code(currency):
        wrong = f"Currency-Code: the account's currency is {currency}"
        raise DiameterError(Result.INVALID_AVP_VALUE, wrong, currency_avp)
    shift = exponent + _minor_digits(currency)
    scale = int(10 ** abs(shift))
    amount, rest = (digits * scale, 0) if shift >= 0 else divmod(digits, scale)
    if rest or amount <= 0:
        wrong = f"CC-Money: a positive amount of whole {currency} minor units"
        raise DiameterError(Result.INVALID_AVP_VALUE, wrong, unit_value)
    return amount


def refund_amount(request: Message, ask_: Ask, quote: QuoteRecord, settings: DiameterSettings) -> int:
    """The money a REFUND_ACCOUNT gives back: per MSCC, its Requested-Service-Unit's CC-Money, else its
    units at the subscriber's tariff now (the quote). At most `max_refund_minor` in all."""
    quoted = {unit.rating_group: unit for unit in quote.units}
    total = 0
    for unit, mscc in zip(ask_.charge.units, request.all(Code.MULTIPLE_SERVICES_CREDIT_CONTROL), strict=True):
        total += _refund_of(unit.rating_group, unit.requested, mscc, quoted, quote)
        if not 0 < total <= settings.max_refund_minor:  # each part is named: the one that crossed the bound
            wrong = f"refund of {total} minor units: above 0, at most {settings.max_refund_minor}"
            raise DiameterError(Result.INVALID_AVP_VALUE, wrong, mscc)
    return total


def _refund_of(
    rating_group: int, requested_units: int, mscc: Avp, quoted: dict[int, QuotedUnitRecord], quote: QuoteRecord
) -> int:
    requested = mscc.child(Code.REQUESTED_SERVICE_UNIT)
    cc_money = requested.child(Code.CC_MONEY) if requested is not None else None
    if cc_money is not None:
        return _money(cc_money, quote.currency)
    if requested is None or not requested_units:
        missing = make(Code.REQUESTED_SERVICE_UNIT, [])
        raise DiameterError(Result.MISSING_AVP, "Requested-Service-Unit: the units or CC-Money to refund", missing)
    entry = quoted[rating_group]
    if entry.result != Result.SUCCESS:
        raise DiameterError(Result.RATING_FAILED, quote.error or "no tariff prices the units to refund", mscc)
    return entry.price_minor


def refund_key(ask_: Ask) -> str:
    """The core's idempotency key of a refund: one per (gateway, Session-Id, CC-Request-Number)."""
    charge = ask_.charge
    name = f"{charge.gateway_id}\n{charge.session_id}\n{charge.request_number}".encode()
    return "diameter-refund:" + hashlib.blake2b(name, digest_size=20).hexdigest()


def refund_reason(ask_: Ask, maximum_length: int) -> str:
    """The ledger's words for it: the gateway and its session (cut to the reason's bound)."""
    charge = ask_.charge
    return f"Diameter refund {charge.gateway_id} {charge.session_id} #{charge.request_number}"[:maximum_length]


def refund_answer(request: Message, ask_: Ask, amount_minor: int, currency: str, settings: DiameterSettings) -> Message:
    """REFUND_ACCOUNT (RFC 8506 §6.4) done: 2001, what was credited in Cost-Information, an MSCC per
    service."""
    msccs = [_echo(ask_, unit.rating_group, Result.SUCCESS) for unit in ask_.charge.units]
    return _event_answer(request, ask_, settings, Result.SUCCESS, [cost_information(amount_minor, currency), *msccs])
