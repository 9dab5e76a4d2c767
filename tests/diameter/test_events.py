"""One-time events over a real Diameter socket (RFC 8506 §6), against the books creditd reports over gRPC
and the Redis keys themselves: PRICE_ENQUIRY answers the price the sample plan's tariffs give (voice by
destination, SMS home and abroad, data by volume; its Cost-Information read back by python-diameter too),
the same as a DIRECT_DEBITING of the same event then debits, without a balance check and writing nothing
(every key of the account and of the session is DUMPed before and after); REFUND_ACCOUNT credits
CC-Money or priced units back once, a retransmission (T bit, and through a second front process)
answered the same and crediting nothing more; every refused refund or enquiry (unknown subscriber, wrong
currency, fractions of a minor unit, over the bound, no units, no tariff, an unknown Requested-Action)
writes nothing."""

from __future__ import annotations

import pytest
from diameter.message import Message as ReferenceMessage

from creditd.diameter.codec import Avp, Message, make
from creditd.diameter.dictionary import Code
from creditd.diameter.server import DiameterServer
from tests.diameter.client import (
    EVENT,
    GATEWAY_HOST,
    GY,
    SMS,
    Client,
    Service,
    ccr,
    connected,
    grants,
    result_of,
    retransmitted,
)
from tests.diameter.conftest import DiameterAt
from tests.harness import Harness

SUBSCRIBER = "66811110000"
VOICE, DATA, TEXT = 100, 1, 3  # wire Rating-Groups; 100 is creditd's voice group 2 in the test settings
REFUND_ACCOUNT, PRICE_ENQUIRY = 1, 3
THB, USD = 764, 840


def _action(action: int, *more: Avp) -> list[Avp]:
    return [make(Code.REQUESTED_ACTION, action), *more]


def _sms_to(recipient: str) -> Avp:
    address = make(Code.RECIPIENT_ADDRESS, [make(Code.ADDRESS_TYPE, 1), make(Code.ADDRESS_DATA, recipient)])
    return make(Code.SERVICE_INFORMATION, [make(Code.SMS_INFORMATION, [make(Code.RECIPIENT_INFO, [address])])])


def _money(digits: int, exponent: int = -2, currency: int | None = THB) -> Avp:
    """An MSCC of the voice group whose Requested-Service-Unit is CC-Money."""
    unit_value = make(Code.UNIT_VALUE, [make(Code.VALUE_DIGITS, digits), make(Code.EXPONENT, exponent)])
    money = [unit_value] + ([make(Code.CURRENCY_CODE, currency)] if currency is not None else [])
    requested = make(Code.REQUESTED_SERVICE_UNIT, [make(Code.CC_MONEY, money)])
    return make(Code.MULTIPLE_SERVICES_CREDIT_CONTROL, [requested, make(Code.RATING_GROUP, VOICE)])


def _cost(answer: Message) -> tuple[int, int, int]:
    """Cost-Information as (Value-Digits, Exponent, Currency-Code)."""
    cost = answer.first(Code.COST_INFORMATION)
    assert cost is not None, answer
    unit_value, currency = cost.child(Code.UNIT_VALUE), cost.child(Code.CURRENCY_CODE)
    assert unit_value is not None and currency is not None, cost
    digits, exponent = unit_value.child(Code.VALUE_DIGITS), unit_value.child(Code.EXPONENT)
    assert digits is not None and exponent is not None, unit_value
    return digits.value, exponent.value, currency.value  # type: ignore[return-value]


def _books(creditd: Harness, session_ids: list[str]) -> dict[str, bytes | None]:
    """Every key a charge of these sessions of the subscriber touches, DUMPed (None: absent)."""
    calls = creditd.server_calls()
    keys = {key for session_id in session_ids for key in calls.keys_of("charge", SUBSCRIBER, GATEWAY_HOST, session_id)}
    keys.discard(calls.keys_of("charge", SUBSCRIBER)[5])  # the partition's event stream: others write it
    return {key: creditd.redis.dump(key) for key in sorted(keys)}


async def _ask(client: Client, session_id: str, services: list[Service], extra: list[Avp], **fields: object) -> Message:
    return await client.ask(ccr(session_id, EVENT, 0, SUBSCRIBER, services, extra=extra, **fields))  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_price_enquiry_answers_the_tariffs_price_and_writes_nothing(
    creditd: Harness, diameter: DiameterServer
) -> None:
    await creditd.create_account(SUBSCRIBER, balance=0)  # no balance check: an empty line is priced too
    sessions = ["price;1", "price;2", "price;3", "price;4", "price;5", "price;6"]
    before = _books(creditd, sessions)
    octets = Code.CC_TOTAL_OCTETS
    async with connected(diameter.port) as client:
        # 75 s to a Thai number: two started minutes at 100 satang
        home = await _ask(client, "price;1", [Service(VOICE, 75)], _action(PRICE_ENQUIRY))
        assert result_of(home) == 2001 and _cost(home) == (200, -2, THB)
        cost = ReferenceMessage.from_bytes(client.last_bytes).cost_information  # an independent decoder agrees
        assert (cost.unit_value.value_digits, cost.unit_value.exponent, cost.currency_code) == (200, -2, THB)
        assert result_of_mscc(grants(home)[VOICE]) == 2001
        abroad = await _ask(client, "price;2", [Service(VOICE, 60)], _action(PRICE_ENQUIRY), called="tel:+491701234567")
        assert _cost(abroad) == (900, -2, THB)
        # an SMS abroad, and 2.5 MB of data in two rating groups' worth (voice has no volume tariff: one group)
        text = await _ask(
            client,
            "price;3",
            [Service(TEXT, 1, unit=Code.CC_SERVICE_SPECIFIC_UNITS)],
            _action(PRICE_ENQUIRY, _sms_to("+491701234567")),
            context=SMS,
            called="",
        )
        assert _cost(text) == (300, -2, THB)
        data = await _ask(
            client, "price;4", [Service(DATA, 2_500_000, unit=octets)], _action(PRICE_ENQUIRY), context=GY
        )
        assert _cost(data) == (30, -2, THB)  # three started MB at 10
        # no tariff prices rating group 77: 5031, its MSCC 5031, no partial total
        unpriced = await _ask(
            client, "price;5", [Service(DATA, 1000, unit=octets), Service(77, 1, unit=octets)], _action(3), context=GY
        )
        assert result_of(unpriced) == 5031 and unpriced.first(Code.COST_INFORMATION) is None
        assert result_of_mscc(grants(unpriced)[77]) == 5031 and result_of_mscc(grants(unpriced)[DATA]) == 2001
        assert result_of(await _ask(client, "price;6", [], _action(PRICE_ENQUIRY))) == 5005  # nothing to price
        unknown = ccr("price;7", EVENT, 0, "66899990000", [Service(VOICE, 60)], extra=_action(PRICE_ENQUIRY))
        assert result_of(await client.ask(unknown)) == 5030
    assert _books(creditd, sessions) == before


def result_of_mscc(mscc: Avp) -> int:
    found = mscc.child(Code.RESULT_CODE)
    assert found is not None and isinstance(found.value, int), mscc
    return found.value


@pytest.mark.asyncio
async def test_a_direct_debit_costs_what_the_enquiry_quoted(creditd: Harness, diameter: DiameterServer) -> None:
    await creditd.create_account(SUBSCRIBER, balance=1_000)
    units = Code.CC_SERVICE_SPECIFIC_UNITS
    async with connected(diameter.port) as client:
        for number, recipient in enumerate(["+66812345678", "+491701234567"]):
            services = [Service(TEXT, 1, unit=units)]
            asked = await _ask(
                client, f"quote;{number}", services, _action(PRICE_ENQUIRY, _sms_to(recipient)), context=SMS, called=""
            )
            price = _cost(asked)[0]
            before = (await creditd.get(SUBSCRIBER)).balance
            debit = await _ask(
                client, f"debit;{number}", services, _action(0, _sms_to(recipient)), context=SMS, called=""
            )
            assert result_of(debit) == 2001
            assert (await creditd.get(SUBSCRIBER)).balance == before - price


@pytest.mark.asyncio
async def test_a_refund_credits_once_through_any_front(
    creditd: Harness, diameter_at: DiameterAt, diameter: DiameterServer
) -> None:
    await creditd.create_account(SUBSCRIBER, balance=1_000)
    refund = ccr("refund;1", EVENT, 0, SUBSCRIBER, [], extra=[*_action(REFUND_ACCOUNT), _money(250)])
    units = ccr("refund;2", EVENT, 0, SUBSCRIBER, [Service(VOICE, 120)], extra=_action(REFUND_ACCOUNT))
    async with connected(diameter.port) as client:
        first = await client.ask(refund)
        assert result_of(first) == 2001 and _cost(first) == (250, -2, THB)
        assert result_of_mscc(grants(first)[VOICE]) == 2001
        assert (await client.ask(retransmitted(refund))).avps == first.avps
        priced = await client.ask(units)  # two minutes of voice at the tariff now: 200
        assert result_of(priced) == 2001 and _cost(priced) == (200, -2, THB)
    async with diameter_at() as second, connected(second.port) as client:
        assert (await client.ask(retransmitted(refund))).avps == first.avps
        assert (await client.ask(retransmitted(units))).avps == priced.avps
    assert (await creditd.get(SUBSCRIBER)).balance == 1_000 + 250 + 200
    credits = [(entry.kind, entry.amount) for entry in await creditd.ledger(SUBSCRIBER) if entry.kind == "adjustment"]
    assert sorted(credits) == [("adjustment", 200), ("adjustment", 250)]


@pytest.mark.asyncio
async def test_a_refused_refund_or_enquiry_writes_nothing(creditd: Harness, diameter_at: DiameterAt) -> None:
    await creditd.create_account(SUBSCRIBER, balance=1_000)
    cases = [
        ([_money(250, currency=USD)], [], 5004),  # not the account's currency
        ([_money(1, exponent=-3)], [], 5004),  # a tenth of a satang
        ([_money(250, exponent=-40)], [], 5004),  # an exponent no amount needs
        ([_money(0)], [], 5004),
        ([_money(5_001)], [], 5004),  # over max_refund_minor (5 000 here)
        ([], [Service(VOICE, None)], 5005),  # nothing says how much
        ([], [Service(VOICE, 0)], 5005),
        ([], [Service(77, 60)], 5031),  # no tariff prices rating group 77
        ([], [], 5005),
    ]
    sessions = [f"bad;{number}" for number in range(len(cases) + 2)]
    before = _books(creditd, sessions)
    async with diameter_at(max_refund_minor=5_000) as front, connected(front.port) as client:
        for number, (extra, services, expected) in enumerate(cases):
            answer = await _ask(client, sessions[number], services, [*_action(REFUND_ACCOUNT), *extra])
            assert result_of(answer) == expected, (number, answer)
            assert answer.first(Code.FAILED_AVP) is not None or expected == 5031, answer
        unknown_action = await _ask(client, sessions[-2], [Service(VOICE, 60)], _action(7))
        assert result_of(unknown_action) == 5004
        unknown = ccr("bad;x", EVENT, 0, "66899990000", [], extra=[*_action(REFUND_ACCOUNT), _money(250)])
        assert result_of(await client.ask(unknown)) == 5030
    assert _books(creditd, sessions) == before
    assert (await creditd.get(SUBSCRIBER)).balance == 1_000
