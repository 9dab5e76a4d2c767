"""Bonus money (lua/lib/bonus.lua, the plan's topup_bonuses) on a real server, on a frozen clock, with
the sample plan plus two top-up rules: 100.00 or more gets 20 % bonus for every service at home;
50.00 or more gets 10.00 for data at home only.

It proves, with the card, the ledger, the usage records and the auditor (run after each test): bonus
money pays usage first (a reservation holds it in its bonus bucket, a commit charges it before main
money, the usage record says how much it paid, the ledger debits only the rest); it serves only its
scope; it never pays a bundle, a debt or a suspended line's calls, and a top-up that clears a debt
grants its bonus beside it; a replayed top-up grants nothing twice; concurrent sessions never
reserve more than main and bonus money together; an orphaned session's bonus part is charged from
its bonus; a spent bonus leaves at once; an account at max_buckets_per_account gets a ledger entry
instead of a bonus (its top-up applies); a bonus in instalments is granted a third at once and a
third at the start of each of the next two billing cycles, each expiring on its own date (`creditd
account show` lists the bonus and the instalments to come); the auditor finds a bonus bucket above
its grant; the config refuses a rule that is ambiguous or names an unknown zone; the subscriber is
told of a bonus granted and of one expired, in their language, through the notifier; and debt is
shared among providers by the main money their usage cost (bonus money makes no debt), and rerating
gives back main money only; the data overage cap counts (and bounds) main money only."""

from __future__ import annotations

import asyncio
import re
import tomllib

import msgspec
import pytest

from creditd.cli.render import account_card
from creditd.config.plans import TopupBonus, check_plan
from creditd.config.rating import check_rating
from creditd.config.settings import Settings, parse_settings
from creditd.core.attribution import provider_charges_since_credit
from creditd.core.rerate import window_rows
from creditd.errors import ConfigError
from creditd.formatting import local_time, money
from creditd.store.account_record import read_account
from creditd.store.connection import AnySyncRedis
from creditd.store.embedded import EmbeddedRedis
from creditd.v1 import creditd_pb2 as pb
from tests.harness import (
    DATA,
    EVENT,
    INITIAL,
    MB,
    SMS,
    TERMINATE,
    VOICE,
    FrozenClock,
    Harness,
    ServerAt,
    started_server,
    tamper_account,
)
from tests.test_channels import http_server
from tests.test_notifier import notifier_for, posted
from tests.test_rating import utc_ms
from tests.test_rating_config import SHIPPED
from tests.test_rerate import STREAMING
from tests.test_usage import all_usage

ACCOUNT = "66817170001"
DAY_S = 86_400
NOON_BANGKOK = "2027-03-10T05:00:00"  # daytime tariffs; the account's billing cycles start on the 10th
ROAMING_PLMN = "31026"
VIDEO = 7  # tests.test_rerate's streaming tariff, provider streamco
RULES = [
    TopupBonus(min_amount_minor=10_000, bonus_percent=20),
    TopupBonus(min_amount_minor=5_000, bonus_minor=1_000, rating_groups=[DATA]),
]


def with_bonuses(settings: Settings, rules: list[TopupBonus]) -> Settings:
    plan = msgspec.structs.replace(settings.plans["standard"], topup_bonuses=rules)
    return msgspec.structs.replace(settings, plans={**settings.plans, "standard": plan})


def bonus_buckets(card: pb.Account) -> list[tuple[str, int, int]]:
    return sorted((b.bucket_id, b.remaining, b.reserved) for b in card.buckets if b.unit == pb.MONEY)


async def charges(creditd: Harness) -> list[int]:
    return [entry.amount for entry in reversed(await creditd.ledger(ACCOUNT)) if entry.kind == "charge"]


@pytest.mark.asyncio
async def test_bonus_pays_usage_first_and_main_money_the_rest(server_at: ServerAt, settings: Settings) -> None:
    async with server_at(utc_ms(NOON_BANGKOK), loaded=with_bonuses(settings, RULES)) as creditd:
        await creditd.create_account(ACCOUNT, balance=1_000)
        topped = await creditd.top_up(ACCOUNT, 10_000, "t1")
        bonus_id = f"bonus:{topped.ledger_seq}"
        assert topped.account.balance == 11_000 and bonus_buckets(topped.account) == [(bonus_id, 2_000, 0)]
        replay = await creditd.top_up(ACCOUNT, 10_000, "t1")
        assert replay.replayed and bonus_buckets(replay.account) == [(bonus_id, 2_000, 0)]

        call = await creditd.charge("v1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])  # 300 s: 500 held in the bonus
        assert call.grants[0].granted == 300
        card = await creditd.get(ACCOUNT)
        assert (card.reserved, card.available, bonus_buckets(card)) == (0, 11_000, [(bonus_id, 2_000, 500)])
        ended = await creditd.charge("v1", TERMINATE, 1, ACCOUNT, [(VOICE, 0, 130)])  # 3 minutes: 300
        assert ended.grants[0].charged == 300
        card = await creditd.get(ACCOUNT)
        assert (card.balance, card.reserved, bonus_buckets(card)) == (11_000, 0, [(bonus_id, 1_700, 0)])

        # 200 MB cost 2 000: 1 700 held in the bonus, 300 of main money
        await creditd.charge("d1", INITIAL, 0, ACCOUNT, [(DATA, 200 * MB, 0)])
        card = await creditd.get(ACCOUNT)
        assert (card.reserved, bonus_buckets(card)) == (300, [(bonus_id, 1_700, 1_700)])
        used = await creditd.charge("d1", TERMINATE, 1, ACCOUNT, [(DATA, 0, 190 * MB)])  # 1 900
        assert used.grants[0].charged == 1_900
        card = await creditd.get(ACCOUNT)
        assert (card.balance, card.reserved, bonus_buckets(card)) == (10_800, 0, [])  # spent: gone
        assert await charges(creditd) == [-200]  # the voice call was all bonus: no ledger debit

        records = [(r.session_id, r.charged, r.bonus) for r in await all_usage(creditd)]
        assert records == [("v1", 300, 300), ("d1", 1_900, 1_700)]
        ledger = [(e.kind, e.amount, e.reference) for e in reversed(await creditd.ledger(ACCOUNT))]
        assert ("bonus", 0, f"bucket {bonus_id} granted 2000") in ledger
        expires_ms = utc_ms(NOON_BANGKOK) + 30 * DAY_S * 1000
        assert ("bonus_granted", f"{bonus_id} 2000 {expires_ms}") in creditd.events_of(ACCOUNT)


@pytest.mark.asyncio
async def test_bonus_serves_its_scope_only_and_never_a_bundle(server_at: ServerAt, settings: Settings) -> None:
    async with server_at(utc_ms(NOON_BANGKOK), loaded=with_bonuses(settings, RULES)) as creditd:
        await creditd.create_account(ACCOUNT, balance=20_000)
        topped = await creditd.top_up(ACCOUNT, 5_000, "t1")  # data at home only: 1 000
        bonus_id = f"bonus:{topped.ledger_seq}"
        await creditd.charge("s1", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])  # SMS: main money
        await creditd.charge("r1", INITIAL, 0, ACCOUNT, [(DATA, MB, 0)], visited_plmn=ROAMING_PLMN)
        await creditd.charge("r1", TERMINATE, 1, ACCOUNT, [(DATA, 0, MB)])  # roaming data: main money
        card = await creditd.get(ACCOUNT)
        assert (card.balance, bonus_buckets(card)) == (25_000 - 50 - 500, [(bonus_id, 1_000, 0)])

        buy = pb.PurchaseBundleRequest(account_id=ACCOUNT, bundle_id="data_1gb", idempotency_key="b1")
        bought = await creditd.accounts.PurchaseBundle(buy)
        assert bonus_buckets(bought) == [(bonus_id, 1_000, 0)]  # a bundle is bought with main money only

        await creditd.charge("d1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])
        await creditd.charge("d1", TERMINATE, 1, ACCOUNT, [(DATA, 0, 5 * MB)])  # from the bundle: no money
        assert bonus_buckets(await creditd.get(ACCOUNT)) == [(bonus_id, 1_000, 0)]


@pytest.mark.asyncio
async def test_bonus_pays_no_debt_and_no_suspended_line(server_at: ServerAt, settings: Settings) -> None:
    async with server_at(utc_ms(NOON_BANGKOK), loaded=with_bonuses(settings, RULES)) as creditd:
        await creditd.create_account(ACCOUNT, balance=500)
        await creditd.charge("v1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])
        await creditd.charge("v1", TERMINATE, 1, ACCOUNT, [(VOICE, 0, 600)])  # 10 minutes: 1 000, 500 of debt
        assert (await creditd.get(ACCOUNT)).balance == -500

        topped = await creditd.top_up(ACCOUNT, 5_000, "t1")  # the debt comes off the top-up, not the bonus
        assert topped.account.balance == 4_500 and topped.account.status == pb.ACTIVE
        bonus_id = f"bonus:{topped.ledger_seq}"
        assert bonus_buckets(topped.account) == [(bonus_id, 1_000, 0)]

        await creditd.charge("v2", INITIAL, 0, ACCOUNT, [(VOICE, 4_500 // 100 * 60, 0)])
        await creditd.charge("v2", TERMINATE, 1, ACCOUNT, [(VOICE, 0, 4_500 // 100 * 60)])  # main money spent
        card = await creditd.get(ACCOUNT)
        assert (card.balance, card.status, bonus_buckets(card)) == (0, pb.ONE_WAY_SUSPENDED, [(bonus_id, 1_000, 0)])
        denied = await creditd.charge("d1", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])  # bonus is not credit
        assert denied.grants[0].result == pb.END_USER_SERVICE_DENIED
        assert bonus_buckets(await creditd.get(ACCOUNT)) == [(bonus_id, 1_000, 0)]


@pytest.mark.asyncio
async def test_concurrent_sessions_never_reserve_more_than_main_and_bonus(
    server_at: ServerAt, settings: Settings
) -> None:
    rules = [TopupBonus(min_amount_minor=10_000, bonus_percent=200)]
    async with server_at(utc_ms(NOON_BANGKOK), loaded=with_bonuses(settings, rules)) as creditd:
        await creditd.create_account(ACCOUNT, balance=1_000)
        await creditd.top_up(ACCOUNT, 10_000, "t1")  # main 11 000, bonus 20 000: 62 calls of 500
        sessions = [f"v{n}" for n in range(100)]
        answers = await asyncio.gather(*(creditd.charge(s, INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)]) for s in sessions))
        granted = [s for s, a in zip(sessions, answers, strict=True) if a.grants[0].result == pb.SUCCESS]
        assert len(granted) == 62 and all(a.grants[0].granted in (0, 300) for a in answers)
        card = await creditd.get(ACCOUNT)
        assert card.available == 0 and sum(b.remaining - b.reserved for b in card.buckets) == 0
        await asyncio.gather(*(creditd.charge(s, TERMINATE, 1, ACCOUNT, [(VOICE, 0, 300)]) for s in granted))
        card = await creditd.get(ACCOUNT)
        assert (card.balance, card.status, sum(b.remaining for b in card.buckets)) == (0, pb.ONE_WAY_SUSPENDED, 0)
        assert sum(r.charged for r in await all_usage(creditd)) == 31_000
        assert sum(await charges(creditd)) == -11_000


@pytest.mark.asyncio
async def test_a_bonus_in_instalments_comes_a_third_per_billing_cycle(server_at: ServerAt, settings: Settings) -> None:
    rules = [TopupBonus(min_amount_minor=30_000, bonus_minor=9_000, instalments=3, validity_s=40 * DAY_S)]
    async with server_at(utc_ms(NOON_BANGKOK), loaded=with_bonuses(settings, rules)) as creditd:
        await creditd.create_account(ACCOUNT, balance=0)
        topped = await creditd.top_up(ACCOUNT, 30_000, "t1")
        bonus_id = f"bonus:{topped.ledger_seq}"
        assert bonus_buckets(topped.account) == [(bonus_id, 3_000, 0)]
        shown = account_card(topped.account).splitlines()
        assert (
            f"bonus        {bonus_id}: 3000 of 3000 THB left, 0 reserved, expires 2027-04-19 05:00:00 UTC, serves home"
            in shown
        )
        assert f"instalments  {bonus_id}: 2 more of 3000 THB, the next at 2027-04-10 00:00:00 UTC" in shown
        (pending,) = topped.account.bonus_instalments
        assert (pending.bonus_id, pending.instalments_left, pending.instalment_amount, pending.next_at_ms) == (
            bonus_id,
            2,
            3_000,
            utc_ms("2027-04-10T00:00:00"),
        )

        creditd.clock.advance(32 * DAY_S)  # 11 April: the second instalment came on the 10th
        await creditd.server.sweeper.sweep_once()
        card = await creditd.get(ACCOUNT)
        assert bonus_buckets(card) == [(bonus_id, 3_000, 0), (f"{bonus_id}:2", 3_000, 0)]
        assert card.bonus_instalments[0].instalments_left == 1
        expiry = {b.bucket_id: b.expires_at_ms for b in card.buckets}
        assert expiry[f"{bonus_id}:2"] == utc_ms("2027-04-10T00:00:00") + 40 * DAY_S * 1000

        creditd.clock.advance(30 * DAY_S)  # 11 May: the first expired on 19 April, the third came on 10 May
        await creditd.server.sweeper.sweep_once()
        card = await creditd.get(ACCOUNT)
        assert bonus_buckets(card) == [(f"{bonus_id}:2", 3_000, 0), (f"{bonus_id}:3", 3_000, 0)]
        assert list(card.bonus_instalments) == []
        assert ("bonus_expired", f"{bonus_id} 3000") in creditd.events_of(ACCOUNT)
        kinds = [e.kind for e in await creditd.ledger(ACCOUNT)]
        assert kinds.count("bonus") == 3 and kinds.count("expiry") == 1


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ({"min_amount_minor": 100}, "topup_bonuses[0]: give one of bonus_percent and bonus_minor"),
        (
            {"min_amount_minor": 100, "bonus_percent": 5, "bonus_minor": 10},
            "topup_bonuses[0]: give one of bonus_percent and bonus_minor",
        ),
        ({"min_amount_minor": 100, "bonus_minor": 2, "instalments": 3}, "less than one minor unit per instalment"),
        ({"min_amount_minor": 100, "bonus_minor": 10, "zones": ["mars"]}, "topup_bonuses[0].zones: unknown zone mars"),
    ],
)
def test_the_config_refuses_a_bad_rule(settings: Settings, rule: dict[str, object], error: str) -> None:
    bonus = msgspec.convert(rule, TopupBonus)
    with pytest.raises(ConfigError, match=re.escape(error)):
        broken = with_bonuses(settings, [bonus])
        check_plan("plans.standard", broken.plans["standard"], broken.limits)
        check_rating(broken)


@pytest.mark.asyncio
async def test_an_orphaned_session_is_charged_from_its_bonus(server_at: ServerAt, settings: Settings) -> None:
    charge_policy = msgspec.structs.replace(settings.sweeper, orphan_policy="charge", grace_period_s=0)
    async with server_at(utc_ms(NOON_BANGKOK), loaded=with_bonuses(settings, RULES), sweeper=charge_policy) as creditd:
        await creditd.create_account(ACCOUNT, balance=1_000)
        topped = await creditd.top_up(ACCOUNT, 10_000, "t1")
        await creditd.charge("v1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])  # 500 held in the bonus
        creditd.clock.advance(3_600)  # the gateway never reported
        await creditd.server.sweeper.sweep_once()
        card = await creditd.get(ACCOUNT)
        assert (card.balance, bonus_buckets(card)) == (11_000, [(f"bonus:{topped.ledger_seq}", 1_500, 0)])
        assert [(r.reference, r.charged, r.bonus) for r in await all_usage(creditd)] == [("orphan gw1 v1", 500, 500)]


@pytest.mark.asyncio
async def test_the_auditor_finds_a_bonus_bucket_above_its_grant(server_at: ServerAt, settings: Settings) -> None:
    async with server_at(utc_ms(NOON_BANGKOK), loaded=with_bonuses(settings, RULES)) as creditd:
        await creditd.create_account(ACCOUNT, balance=1_000)
        topped = await creditd.top_up(ACCOUNT, 10_000, "t1")
        key, bucket_id = creditd.server_keys().account(ACCOUNT), f"bonus:{topped.ledger_seq}"
        stored = read_account(creditd.redis, key)["bucket:" + bucket_id]
        unit, _, *rest = stored.split("|")
        tamper_account(creditd.redis, key, buckets={bucket_id: "|".join([unit, "2001", *rest])})
        assert creditd.audit().violations == [
            f"account {ACCOUNT}: bonus bucket bonus:{topped.ledger_seq} holds 2001, more than it was granted (2000)"
        ]
        tamper_account(creditd.redis, key, buckets={bucket_id: stored})


@pytest.mark.asyncio
async def test_an_account_at_its_bucket_limit_tops_up_without_a_bonus(
    redis_server: EmbeddedRedis, redis_client: AnySyncRedis, settings: Settings
) -> None:
    rules = [TopupBonus(min_amount_minor=1_000, bonus_minor=100, instalments=2)]
    small = msgspec.structs.replace(settings.limits, max_buckets_per_account=2)
    own = msgspec.structs.replace(with_bonuses(settings, rules), limits=small)
    async with started_server(own, redis_server.url, redis_client, FrozenClock(utc_ms(NOON_BANGKOK))) as creditd:
        await creditd.create_account(ACCOUNT, balance=0)
        seqs = [(await creditd.top_up(ACCOUNT, 1_000, f"t{n}")).ledger_seq for n in range(3)]
        card = await creditd.get(ACCOUNT)
        assert (card.balance, bonus_buckets(card)) == (
            3_000,
            [(f"bonus:{seqs[0]}", 50, 0), (f"bonus:{seqs[1]}", 50, 0)],
        )
        assert [entry.bonus_id for entry in card.bonus_instalments] == [f"bonus:{seqs[0]}", f"bonus:{seqs[1]}"]
        notes = [e.reference for e in await creditd.ledger(ACCOUNT) if e.kind == "bonus" and "not" in e.reference]
        assert sorted(notes) == [
            f"bucket bonus:{seqs[2]} of 50 not granted: the account holds max_buckets_per_account buckets",
            f"instalments of bonus:{seqs[2]} not scheduled: the account awaits max_buckets_per_account bonuses in"
            " instalments",
        ]
        await creditd.charge("v1", INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])
        await creditd.charge("v1", TERMINATE, 1, ACCOUNT, [(VOICE, 0, 60)])  # 100: both bonuses spent
        assert bonus_buckets(await creditd.get(ACCOUNT)) == []
        again = await creditd.top_up(ACCOUNT, 1_000, "t3")
        assert bonus_buckets(again.account) == [(f"bonus:{again.ledger_seq}", 50, 0)]
        creditd.assert_audit_clean()


@pytest.mark.asyncio
async def test_the_subscriber_is_told_of_a_bonus_and_its_expiry(server_at: ServerAt, settings: Settings) -> None:
    with http_server() as endpoint:
        async with server_at(utc_ms(NOON_BANGKOK), loaded=with_bonuses(settings, RULES)) as creditd:
            notifier = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", settings)
            await creditd.create_account(ACCOUNT, balance=1_000)
            preferences = pb.Preferences(channels=["webhook"], language="en")
            await creditd.accounts.SetPreferences(pb.SetPreferencesRequest(account_id=ACCOUNT, preferences=preferences))
            await creditd.top_up(ACCOUNT, 10_000, "t1")
            await notifier.pass_once()
            until = local_time(utc_ms(NOON_BANGKOK) + 30 * DAY_S * 1000, "Asia/Bangkok", "en")
            texts = {notice["kind"]: notice["text"] for notice in posted(endpoint)}
            bonus = money(2_000, "THB", "en")
            assert texts["bonus_granted"] == (
                f"You received {bonus} of bonus money, valid until {until}. Calls, SMS and data use it before"
                " your balance."
            )
            creditd.clock.advance(31 * DAY_S)
            await creditd.server.sweeper.sweep_once()
            await notifier.pass_once()
            texts = {notice["kind"]: notice["text"] for notice in posted(endpoint)}
            assert texts["bonus_expired"] == f"Your bonus money has expired with {bonus} unused."


@pytest.mark.asyncio
async def test_debt_is_shared_among_providers_by_main_money_only(server_at: ServerAt) -> None:
    config = STREAMING + "\n[[plans.standard.topup_bonuses]]\nmin_amount_minor = 1000\nbonus_minor = 500\n"
    async with server_at(utc_ms(NOON_BANGKOK), config) as creditd:
        await creditd.create_account(ACCOUNT, balance=1_000)
        await creditd.top_up(ACCOUNT, 1_000, "t1")  # balance 2 000, bonus 500
        await creditd.charge("s1", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])  # 50, all bonus
        await creditd.charge("v1", INITIAL, 0, ACCOUNT, [(VIDEO, 0, 0)])
        await creditd.charge("v1", TERMINATE, 1, ACCOUNT, [(VIDEO, 0, 1_800)])  # 3 000: 450 bonus, 2 550 main
        assert (await creditd.get(ACCOUNT)).balance == -550
        await asyncio.sleep(creditd.settings.events.settle_ms / 1000 * 3)  # past the usage feed's horizon
        charges = provider_charges_since_credit(creditd.redis, creditd.settings, [ACCOUNT])[ACCOUNT]
        assert dict(charges) == {"streamco": 2_550}  # the operator's SMS cost the subscriber no main money


@pytest.mark.asyncio
async def test_rerating_gives_back_main_money_only(server_at: ServerAt) -> None:
    rule = "\n[[plans.standard.topup_bonuses]]\nmin_amount_minor = 1000\nbonus_minor = 500\n"
    async with server_at(utc_ms(NOON_BANGKOK), SHIPPED + rule) as creditd:
        await creditd.create_account(ACCOUNT, balance=1_000)
        await creditd.top_up(ACCOUNT, 1_000, "t1")
        for session_id in ("c1", "c2"):  # 5 minutes at 100 each: the first all bonus, the second all main
            await creditd.charge(session_id, INITIAL, 0, ACCOUNT, [(VOICE, 0, 0)])
            await creditd.charge(session_id, TERMINATE, 1, ACCOUNT, [(VOICE, 0, 300)])
        assert (await creditd.get(ACCOUNT)).balance == 1_500
        await asyncio.sleep(creditd.settings.events.settle_ms / 1000 * 3)  # past the usage feed's horizon
        cheaper = parse_settings(tomllib.loads(SHIPPED.replace("price_minor = 100\n", "price_minor = 80\n", 1) + rule))
        window = (utc_ms(NOON_BANGKOK) - 60_000, utc_ms(NOON_BANGKOK) + 60_000)
        (row,) = window_rows(creditd.redis, cheaper, window, frozenset(), lambda _: "standard").values()
        # main money paid 500 for what costs 400 now; the bonus call's 100 less is not paid out as money
        assert (row.records, row.charged, row.rerated, row.adjustment) == (2, 500, 400, 100)


@pytest.mark.asyncio
async def test_the_data_overage_cap_counts_main_money_only(server_at: ServerAt, settings: Settings) -> None:
    capped = with_bonuses(settings, RULES)
    plan = msgspec.structs.replace(capped.plans["standard"], monthly_data_overage_cap_minor=1_000)
    capped = msgspec.structs.replace(capped, plans={**capped.plans, "standard": plan})
    async with server_at(utc_ms(NOON_BANGKOK), loaded=capped) as creditd:
        await creditd.create_account(ACCOUNT, balance=10_000)
        await creditd.top_up(ACCOUNT, 10_000, "t1")  # bonus 2 000
        await creditd.charge("d1", INITIAL, 0, ACCOUNT, [(DATA, 100 * MB, 0)])
        await creditd.charge("d1", TERMINATE, 1, ACCOUNT, [(DATA, 0, 100 * MB)])  # 1 000, all bonus
        assert (await creditd.get(ACCOUNT)).data_overage_spent == 0
        # 250 MB asked: the cap lets main money pay 1 000 and bonus has 1 000 left: 200 MB
        granted = await creditd.charge("d2", INITIAL, 0, ACCOUNT, [(DATA, 250 * MB, 0)])
        assert (granted.grants[0].granted, granted.grants[0].throttled) == (200 * MB, False)
        await creditd.charge("d2", TERMINATE, 1, ACCOUNT, [(DATA, 0, 200 * MB)])
        card = await creditd.get(ACCOUNT)
        assert (card.balance, card.data_overage_spent, bonus_buckets(card)) == (19_000, 1_000, [])
        throttled = await creditd.charge("d3", INITIAL, 0, ACCOUNT, [(DATA, 0, 0)])
        assert throttled.grants[0].throttled  # the cap is reached and no bonus is left
