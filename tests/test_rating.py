"""The rating engine on a real server, with the sample plan `standard` (docs/configuration.md, "The sample plan")
and, for holidays, services and daylight saving, a config of the test's own: calls and SMS are
priced by destination (longest prefix), zone (visited PLMN) and Bangkok time band; a grant that
crosses a band edge carries tariff_time_change_ms, and usage reported split is charged part at each
price (unsplit: at the grant's price); a money grant across a change is sized for the dearer side;
roaming reprices the next grant of a session; a service id selects its own tariff; bundles serve at
home only; one-way suspension still lets roaming incoming calls through at their price; a number no
tariff covers is RATING_FAILED and writes nothing (DUMP unchanged); a holiday date and a London band
(across both daylight saving changes) switch at the right instant; grants inside a tariff choice's
remembered window, across its end, before it and after it are priced as without the memory. Each
server runs on a frozen clock set to the instant the case needs."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from creditd.config.settings import load_settings
from creditd.v1 import creditd_pb2 as pb
from tests.harness import (
    DATA,
    EVENT,
    INITIAL,
    MB,
    SMS,
    TERMINATE,
    THAI_NUMBER,
    UPDATE,
    VOICE,
    VOICE_IN,
    Harness,
    ServerAt,
    charge_request,
    dump,
)
from tests.test_rating_config import SHIPPED

pytestmark = pytest.mark.asyncio
ACCOUNT = "66817170000"
LONDON_NUMBER, NO_COUNTRY = "442079460000", "0123456"
ABROAD, HOME = "23415", "52003"


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def bangkok_ms(text: str) -> int:
    return utc_ms(text) - 7 * 3_600_000


async def play(
    creditd: Harness,
    session_id: str,
    units: list[tuple[int, int, int]],
    kind: int = INITIAL,
    number: int = 0,
    called_party: str = THAI_NUMBER,
    visited_plmn: str = "",
    used_after: int = 0,
) -> pb.ChargeAnswer:
    request = charge_request(session_id, kind, number, ACCOUNT, units, called_party=called_party)
    request.visited_plmn = visited_plmn
    if used_after:
        request.units[0].used_after_tariff_change = used_after
    return await creditd.credit_control.Charge(request)


async def test_a_call_across_22_00_is_charged_part_at_each_price(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-03-10T21:55:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=10_000)
        opened = await play(creditd, "s1", [(VOICE, 600, 0)])
        grant = opened.grants[0]
        assert (grant.result, grant.granted, grant.tariff) == (pb.SUCCESS, 600, "voice_out")
        assert grant.tariff_time_change_ms == bangkok_ms("2027-03-10T22:00:00")
        assert grant.validity_time_s == 600 and grant.quota_threshold == 120  # 20 % of the grant
        creditd.clock.advance(600)
        closed = await play(creditd, "s1", [(VOICE, 0, 600)], TERMINATE, 1, used_after=300)
        assert closed.grants[0].charged == 5 * 100 + 5 * 50 == 750

        # a gateway that ignores the change: everything at the price in force when granted
        opened = await play(creditd, "s2", [(VOICE, 600, 0)])
        assert opened.grants[0].tariff == "voice_out_night" and opened.grants[0].tariff_time_change_ms == 0
        creditd.clock.advance(-600)  # 21:55 again
        opened = await play(creditd, "s3", [(VOICE, 600, 0)])
        assert opened.grants[0].tariff_time_change_ms == bangkok_ms("2027-03-10T22:00:00")
        closed = await play(creditd, "s3", [(VOICE, 0, 600)], TERMINATE, 1)
        assert closed.grants[0].charged == 1000
        assert (await creditd.get(ACCOUNT)).balance == 10_000 - 750 - 1000


async def test_grants_in_a_remembered_tariff_window_still_carry_the_change_at_its_end(server_at: ServerAt) -> None:
    """The library remembers until when a context's tariff choice holds (lib/tariffs.lua,
    STABLE_CHOICES): a grant inside that window needs no search for a change, one that reaches past
    its end must still find the change, and one made before the window (a server whose clock is
    behind) or after it chooses again."""
    async with server_at(bangkok_ms("2027-03-11T22:05:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=100_000)  # every session holds its grant

        async def grant(session_id: str, at: str, called_party: str = THAI_NUMBER) -> tuple[str, int, int]:
            creditd.clock.advance((bangkok_ms(at) - creditd.clock.now_ms()) / 1000)
            answer = await play(creditd, session_id, [(VOICE, 600, 0)], called_party=called_party)
            return answer.grants[0].tariff, answer.grants[0].tariff_time_change_ms, answer.grants[0].validity_time_s

        night_ends_ms, night_starts_ms = bangkok_ms("2027-03-12T07:00:00"), bangkok_ms("2027-03-12T22:00:00")
        assert await grant("night", "2027-03-11T22:05:00") == ("voice_out_night", 0, 600)  # holds until 07:00
        assert await grant("clock-behind", "2027-03-11T21:56:00") == (
            "voice_out",
            bangkok_ms("2027-03-11T22:00:00"),
            600,
        )
        assert await grant("morning", "2027-03-12T06:55:00") == ("voice_out_night", night_ends_ms, 600)
        assert await grant("noon", "2027-03-12T12:00:00") == ("voice_out", 0, 600)  # holds until 22:00
        assert await grant("abroad", "2027-03-12T21:49:00", LONDON_NUMBER) == ("voice_out_international", 0, 600)
        assert await grant("ends-at-the-change", "2027-03-12T21:50:00") == ("voice_out", 0, 600)
        assert await grant("across", "2027-03-12T21:55:00") == ("voice_out", night_starts_ms, 600)


async def test_a_money_grant_across_a_change_pays_for_the_dearer_side(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-03-10T06:55:00")) as creditd:  # night 50, then day 100
        await creditd.create_account(ACCOUNT, balance=250)
        opened = await play(creditd, "s1", [(VOICE, 600, 0)])
        grant = opened.grants[0]
        assert (grant.tariff, grant.granted) == ("voice_out_night", 120)  # 2 day blocks, not 5 night ones
        assert grant.tariff_time_change_ms == bangkok_ms("2027-03-10T07:00:00")
        assert (await creditd.get(ACCOUNT)).reserved == 200
        closed = await play(creditd, "s1", [(VOICE, 0, 120)], TERMINATE, 1, used_after=60)
        assert closed.grants[0].charged == 50 + 100


async def test_destinations_and_roaming_price_calls_and_sms(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=100_000)
        for session_id, number, plmn, tariff, price in [
            ("uk", "+" + LONDON_NUMBER, "", "voice_out_international", 900),
            ("th", THAI_NUMBER, HOME, "voice_out", 100),
            ("roam", THAI_NUMBER, ABROAD, "voice_out_roaming", 1500),
        ]:
            opened = await play(creditd, session_id, [(VOICE, 60, 0)], called_party=number, visited_plmn=plmn)
            assert opened.grants[0].tariff == tariff
            closed = await play(creditd, session_id, [(VOICE, 0, 60)], TERMINATE, 1, number, plmn)
            assert closed.grants[0].charged == price, session_id
        for session_id, number, plmn, price in [
            ("sms-uk", LONDON_NUMBER, "", 300),
            ("sms-th", THAI_NUMBER, "", 50),
            ("sms-roam", THAI_NUMBER, ABROAD, 300),
        ]:
            sent = await play(creditd, session_id, [(SMS, 0, 0)], EVENT, called_party=number, visited_plmn=plmn)
            assert sent.grants[0].charged == price, session_id
        assert (await creditd.get(ACCOUNT)).balance == 100_000 - 900 - 100 - 1500 - 300 - 50 - 300


async def test_data_abroad_then_home_in_one_session(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=100_000)
        opened = await play(creditd, "d1", [(DATA, MB, 0)], called_party="", visited_plmn=ABROAD)
        grant = opened.grants[0]
        assert (grant.tariff, grant.granted, grant.quota_threshold, grant.quota_holding_time_s) == (
            "data_roaming",
            MB,
            MB // 5,
            300,
        )
        # back home: the usage of the roaming grant at 500, the next grant at the home price
        update = await play(creditd, "d1", [(DATA, MB, MB)], UPDATE, 1, "", HOME)
        assert (update.grants[0].charged, update.grants[0].tariff) == (500, "data")
        closed = await play(creditd, "d1", [(DATA, 0, MB)], TERMINATE, 2, "", HOME)
        assert closed.grants[0].charged == 10
        assert (await creditd.get(ACCOUNT)).balance == 100_000 - 510


async def test_bundles_serve_at_home_only(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=100_000)
        bought = await creditd.accounts.PurchaseBundle(
            pb.PurchaseBundleRequest(account_id=ACCOUNT, bundle_id="sms_50", idempotency_key="b1")
        )
        assert list(bought.buckets[0].zones) == ["home"]
        home = await play(creditd, "e1", [(SMS, 0, 0)], EVENT)
        abroad = await play(creditd, "e2", [(SMS, 0, 0)], EVENT, visited_plmn=ABROAD)
        assert (home.grants[0].charged, abroad.grants[0].charged) == (0, 300)
        assert (await creditd.get(ACCOUNT)).buckets[0].remaining == 49


async def test_one_way_suspension_lets_roaming_incoming_calls_through_at_their_price(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=1_000)
        await creditd.accounts.SetStatus(
            pb.SetStatusRequest(account_id=ACCOUNT, status=pb.ONE_WAY_SUSPENDED, reason="FRAUD")
        )
        outgoing = await play(creditd, "out", [(VOICE, 0, 0)], visited_plmn=ABROAD)
        incoming = await play(creditd, "in", [(VOICE_IN, 0, 0)], visited_plmn=ABROAD)
        assert outgoing.grants[0].result == pb.END_USER_SERVICE_DENIED
        assert (incoming.grants[0].result, incoming.grants[0].tariff, incoming.grants[0].granted) == (
            pb.SUCCESS,
            "voice_in_roaming",
            120,  # 1 000 pays two 60-s blocks at 500
        )
        closed = await play(creditd, "in", [(VOICE_IN, 0, 61)], TERMINATE, 1, visited_plmn=ABROAD)
        assert closed.grants[0].charged == 1000


async def test_a_number_no_tariff_covers_is_refused_and_writes_nothing(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=1_000)
        before = dump(creditd.redis)
        for kind, rating_group in ((INITIAL, VOICE), (EVENT, SMS)):
            answer = await play(creditd, f"x{kind}", [(rating_group, 0, 0)], kind, called_party=NO_COUNTRY)
            assert answer.result == pb.RATING_FAILED
            assert "units[0]: no tariff of rating group" in answer.error and "zone home" in answer.error
        assert dump(creditd.redis) == before
        # roaming, the same number is priced: the roaming tariff has no destination criterion
        roaming = await play(creditd, "x9", [(VOICE, 0, 0)], called_party=NO_COUNTRY, visited_plmn=ABROAD)
        assert roaming.grants[0].tariff == "voice_out_roaming"


async def test_usage_split_is_checked(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=1_000)
        await play(creditd, "s1", [(VOICE, 60, 0)])
        before = dump(creditd.redis)
        refused = await play(creditd, "s1", [(VOICE, 0, 60)], TERMINATE, 1, used_after=30)
        assert refused.result == pb.INVALID_REQUEST
        assert "used_after_tariff_change: the grant had no tariff time change" in refused.error
        assert dump(creditd.redis) == before
        refused = await play(creditd, "s1", [(VOICE, 0, 10)], TERMINATE, 1, used_after=11)  # refused at the edge
        assert refused.result == pb.INVALID_REQUEST
        assert refused.error == "units[0].used_after_tariff_change: must be between 0 and used (10)"
        assert dump(creditd.redis) == before
        closed = await play(creditd, "s1", [(VOICE, 0, 60)], TERMINATE, 1)
        assert closed.grants[0].charged == 100


HOLIDAY_AND_LONDON = (
    SHIPPED
    + """
[timings.songkran]
dates = [2027-04-13]
start = "07:00"
end = "22:00"

[[plans.standard.tariffs]]
rating_group = 2
name = "voice_out_songkran"
destinations = ["thailand"]
zones = ["home"]
timing = "songkran"
unit = "SECONDS"
price_minor = 25
block_size = 60
default_grant = 300
validity_time_s = 600

[[plans.standard.tariffs]]
rating_group = 1
name = "data_chat"
service_ids = [7]
zones = ["home"]
unit = "BYTES"
price_minor = 0
block_size = 1_000_000
default_grant = 10_000_000
validity_time_s = 600

[timings.small_hours]
start = "01:30"
end = "06:00"

[timings.evening]
start = "18:00"
end = "23:00"

[plans.london]
currency = "GBP"
time_zone = "Europe/London"

[[plans.london.tariffs]]
rating_group = 2
name = "day"
unit = "SECONDS"
price_minor = 10
block_size = 60
default_grant = 60
validity_time_s = 600

[[plans.london.tariffs]]
rating_group = 2
name = "small_hours"
timing = "small_hours"
unit = "SECONDS"
price_minor = 2
block_size = 60
default_grant = 60
validity_time_s = 600

[[plans.london.tariffs]]
rating_group = 2
name = "evening"
timing = "evening"
unit = "SECONDS"
price_minor = 5
block_size = 60
default_grant = 60
validity_time_s = 600
"""
)


async def test_a_holiday_rates_at_its_own_price(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-04-13T12:00:00"), HOLIDAY_AND_LONDON) as creditd:
        await creditd.create_account(ACCOUNT, balance=1_000)
        holiday = await play(creditd, "h1", [(VOICE, 60, 0)])
        creditd.clock.advance(86_400)
        ordinary = await play(creditd, "h2", [(VOICE, 60, 0)])
        assert (holiday.grants[0].tariff, ordinary.grants[0].tariff) == ("voice_out_songkran", "voice_out")
        closed = await play(creditd, "h1", [(VOICE, 0, 60)], TERMINATE, 1)
        assert closed.grants[0].charged == 25


async def test_a_service_id_selects_its_own_tariff(server_at: ServerAt) -> None:
    """Service 7 (a zero-rated chat app) is free at home; other data at home and service 7 abroad are not."""
    async with server_at(bangkok_ms("2027-03-10T12:00:00"), HOLIDAY_AND_LONDON) as creditd:
        await creditd.create_account(ACCOUNT, balance=10_000)
        charged = {}
        for session_id, service_id, plmn in (("chat", 7, ""), ("web", 0, ""), ("chat-abroad", 7, ABROAD)):
            for number, (used, kind) in enumerate(((0, INITIAL), (MB, TERMINATE))):
                request = charge_request(session_id, kind, number, ACCOUNT, [(DATA, 0, used)], called_party="")
                request.units[0].service_id, request.visited_plmn = service_id, plmn
                answer = await creditd.credit_control.Charge(request)
            charged[session_id] = (answer.grants[0].tariff, answer.grants[0].charged)
        assert charged == {"chat": ("data_chat", 0), "web": ("data", 10), "chat-abroad": ("data_roaming", 500)}


@pytest.mark.parametrize(
    ("now_utc", "tariff", "change_utc", "after"),
    [
        ("2027-01-15T17:55:00", "day", "2027-01-15T18:00:00", "evening"),  # GMT: 18:00 local is 18:00 UTC
        ("2027-07-01T16:55:00", "day", "2027-07-01T17:00:00", "evening"),  # BST: 18:00 local is 17:00 UTC
        ("2027-03-28T00:55:00", "day", "2027-03-28T01:00:00", "small_hours"),  # 01:00 GMT jumps to 02:00 BST
        ("2027-10-31T00:25:00", "day", "2027-10-31T00:30:00", "small_hours"),  # 01:30 BST, the first time
        ("2027-10-31T00:55:00", "small_hours", "2027-10-31T01:00:00", "day"),  # 02:00 BST falls back to 01:00 GMT
        ("2027-10-31T01:25:00", "day", "2027-10-31T01:30:00", "small_hours"),  # 01:30 GMT, the second time
    ],
)
async def test_london_bands_switch_at_the_right_instant_across_daylight_saving(
    server_at: ServerAt, now_utc: str, tariff: str, change_utc: str, after: str
) -> None:
    async with server_at(utc_ms(now_utc), HOLIDAY_AND_LONDON) as creditd:
        await creditd.accounts.CreateAccount(
            pb.CreateAccountRequest(account_id=ACCOUNT, plan="london", initial_balance=100)
        )
        opened = await play(creditd, "l1", [(VOICE, 600, 0)])
        assert (opened.grants[0].tariff, opened.grants[0].tariff_time_change_ms) == (tariff, utc_ms(change_utc))
        creditd.clock.advance((utc_ms(change_utc) - utc_ms(now_utc)) // 1000)
        later = await play(creditd, "l2", [(VOICE, 60, 0)])
        assert later.grants[0].tariff == after


def longest_prefix_destination(number: str, tables: dict[str, list[str]]) -> str:
    """The reference: the set of the longest prefix of number, '' for none."""
    best, found = -1, ""
    for name, prefixes in tables.items():
        for prefix in prefixes:
            if number.startswith(prefix) and len(prefix) > best:
                best, found = len(prefix), name
    return found


async def test_destination_lookup_agrees_with_a_plain_longest_prefix_search(
    server_at: ServerAt, tmp_path: Path
) -> None:
    """Random prefix tables of 1 to 6 digits in three sets (a prefix file among them), one tariff per
    set: 400 random numbers (some shorter than the lookup's bucket width) get the tariff of their
    longest prefix, or RATING_FAILED when none matches."""
    rng = random.Random(15)
    pool = sorted({"".join(rng.choice("0123456789") for _ in range(rng.randint(1, 6))) for _ in range(900)})
    rng.shuffle(pool)
    tables = {"alpha": pool[:300], "beta": pool[300:600], "gamma": pool[600:]}
    (tmp_path / "gamma.csv").write_text("".join(f"{prefix},carrier {prefix}\n" for prefix in tables["gamma"]))
    destinations = "\n".join(
        f"[destinations.{name}]\nprefixes = [{', '.join(repr(p).replace(chr(39), chr(34)) for p in tables[name])}]"
        for name in ("alpha", "beta")
    )
    destinations += '\n[destinations.gamma]\nprefixes_file = "gamma.csv"\n'
    tariffs = "\n".join(
        f'[[plans.lookup.tariffs]]\nrating_group = 3\nname = "to_{name}"\ndestinations = ["{name}"]\n'
        'unit = "EVENTS"\nprice_minor = 1\nblock_size = 1\ndefault_grant = 1\nvalidity_time_s = 60'
        for name in tables
    )
    config = tmp_path / "creditd.toml"
    config.write_text(f'{destinations}\n[plans.lookup]\ncurrency = "THB"\n{tariffs}\n')
    loaded = load_settings(config)
    async with server_at(bangkok_ms("2027-03-10T12:00:00"), loaded=loaded) as creditd:
        await creditd.accounts.CreateAccount(
            pb.CreateAccountRequest(account_id=ACCOUNT, plan="lookup", initial_balance=10**6)
        )
        numbers = [
            "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 15)))
            if index % 2
            else rng.choice(pool) + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 8)))
            for index in range(400)
        ]
        requests = [
            charge_request(f"n{index}", EVENT, 0, ACCOUNT, [(SMS, 0, 0)], called_party=number)
            for index, number in enumerate(numbers)
        ]
        batch = await creditd.credit_control.ChargeBatch(pb.ChargeBatchRequest(requests=requests))
        for number, answer in zip(numbers, batch.answers, strict=True):
            expected = longest_prefix_destination(number, tables)
            if expected:
                assert (answer.result, answer.grants[0].tariff) == (pb.SUCCESS, f"to_{expected}"), number
            else:
                assert answer.result == pb.RATING_FAILED, number


async def test_a_reload_takes_new_prefix_tables(server_at: ServerAt, tmp_path: Path) -> None:
    config = tmp_path / "creditd.toml"
    config.write_text(SHIPPED)
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=10_000)
        before = await play(creditd, "r1", [(SMS, 0, 0)], EVENT, called_party="0800123")
        (tmp_path / "freephone.csv").write_text("0800\n")
        config.write_text(
            SHIPPED.replace(
                '[destinations.thailand]\nprefixes = ["66"]',
                '[destinations.thailand]\nprefixes = ["66"]\nprefixes_file = "freephone.csv"',
            )
        )
        await creditd.server.reload_plans(load_settings(config))
        after = await play(creditd, "r2", [(SMS, 0, 0)], EVENT, called_party="0800123")
        assert (before.result, after.result, after.grants[0].tariff) == (pb.RATING_FAILED, pb.SUCCESS, "sms")
