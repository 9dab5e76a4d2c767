"""The core's price quote (Charging.quote, lua/functions/quote_price.lua) on a real server with the sample
plan, on a frozen clock: it prices as a charge made at that instant would (the Bangkok night band from
22:00, a destination abroad, roaming, an SMS, the default grant when no units are asked), says which
units no tariff prices and why, and refuses a rating group twice or a price beyond the maximum amount
naming the field. Every quote, priced or refused, leaves Redis byte for byte as it was (DUMP of every
key), and the account's balance and reservations play no part (an empty line is quoted too). The
argument checks of the function alone are in tests/test_lua_functions.py."""

from __future__ import annotations

import pytest

from creditd.errors import InvalidArgument
from creditd.store.calls import ChargeSpec, UnitSpec
from creditd.store.codes import Code
from tests.harness import SMS, THAI_NUMBER, VOICE, ServerAt, dump
from tests.test_rating import ABROAD, ACCOUNT, NO_COUNTRY, bangkok_ms

pytestmark = pytest.mark.asyncio
GERMAN_NUMBER = "491701234567"


def _ask(*units: UnitSpec, called_party: str = THAI_NUMBER, visited_plmn: str = "") -> ChargeSpec:
    return ChargeSpec("", 4, 0, ACCOUNT, "", units, called_party, visited_plmn)


async def test_a_quote_prices_as_a_charge_now_would_and_writes_nothing(server_at: ServerAt) -> None:
    for instant, home_price, tariff in (("21:59:59", 200, "voice_out"), ("22:00:00", 100, "voice_out_night")):
        async with server_at(bangkok_ms(f"2027-03-10T{instant}")) as creditd:
            await creditd.create_account(ACCOUNT, balance=0)
            charging = creditd.server_charging()
            before = dump(creditd.redis)
            quote = await charging.quote(_ask(UnitSpec(VOICE, 61), UnitSpec(SMS, 1)))
            assert (quote.result, quote.currency, quote.error) == (Code.SUCCESS, "THB", "")
            voice, text = quote.units
            assert (voice.rating_group, voice.units, voice.price_minor, voice.tariff) == (VOICE, 61, home_price, tariff)
            assert (text.result, text.price_minor) == (Code.SUCCESS, 50)
            abroad = await charging.quote(_ask(UnitSpec(VOICE, 60), UnitSpec(SMS, 1), called_party=GERMAN_NUMBER))
            assert [unit.price_minor for unit in abroad.units] == [900, 300]
            roaming = await charging.quote(_ask(UnitSpec(VOICE, 0), called_party=NO_COUNTRY, visited_plmn=ABROAD))
            assert roaming.units[0].tariff == "voice_out_roaming" and roaming.units[0].units > 0  # the default grant
            unpriced = await charging.quote(_ask(UnitSpec(VOICE, 60), UnitSpec(SMS, 1), called_party=NO_COUNTRY))
            assert unpriced.result == Code.RATING_FAILED
            assert unpriced.error.startswith("units[0]: no tariff of rating group 2") and "zone home" in unpriced.error
            assert [unit.result for unit in unpriced.units] == [Code.RATING_FAILED, Code.RATING_FAILED]
            assert dump(creditd.redis) == before


async def test_a_bad_quote_is_refused_naming_the_field(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=1_000)
        charging = creditd.server_charging()
        before = dump(creditd.redis)
        with pytest.raises(InvalidArgument, match=r"^units\[1\]\.rating_group: appears twice"):
            await charging.quote(_ask(UnitSpec(VOICE, 60), UnitSpec(VOICE, 60)))
        with pytest.raises(InvalidArgument, match=r"^units\[0\]\.requested: costs more than the maximum amount"):
            await charging.quote(_ask(UnitSpec(VOICE, 10**15)))
        assert dump(creditd.redis) == before
