"""Plan changes by cohort, with the clock moved: nothing moves before the effective date; after it,
each account of the cohort moves on its next request (ledger entry 'plan', event plan_changed), at
most once per change; a rollout percentage moves a stable share of the cohort (the same accounts
first as it grows, raised by a reload); an open session keeps the price it was granted until its
next grant; cohorts by tier and by list; and a config with a bad plan change is refused, naming the
field. Own settings: the sample plan plus standard_2027 with data and voice at twice the price."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
import pytest
import pytest_asyncio

from creditd.config.settings import PlanChange, Settings, parse_settings
from creditd.errors import ConfigError
from tests.harness import INITIAL, UPDATE, VOICE, Harness, started_server

pytestmark = pytest.mark.asyncio
DAY_S = 86400


def new_price_list(settings: Settings) -> Settings:
    standard = settings.plans["standard"]
    tariffs = [msgspec.structs.replace(t, price_minor=t.price_minor * 2) for t in standard.tariffs]
    return msgspec.structs.replace(
        settings, plans={"standard": standard, "standard_2027": msgspec.structs.replace(standard, tariffs=tariffs)}
    )


def change(effective_ms: int, rollout_percent: int = 100, **cohort: list[str]) -> PlanChange:
    effective_at = datetime.fromtimestamp(effective_ms / 1000, UTC)
    return PlanChange(
        change_id="c2027", to_plan="standard_2027", effective_at=effective_at, rollout_percent=rollout_percent, **cohort
    )


def in_rollout(account_id: str, percent: int) -> bool:
    """The documented rule: the first 8 hex digits of sha1('<change_id> <account_id>') mod 100."""
    return int(hashlib.sha1(f"c2027 {account_id}".encode()).hexdigest()[:8], 16) % 100 < percent


@pytest_asyncio.fixture
async def two_plans(redis_server, redis_client, settings) -> AsyncIterator[Harness]:
    async with started_server(new_price_list(settings), redis_server.url, redis_client) as harness:
        yield harness
    harness.assert_audit_clean()


async def reload(creditd: Harness, *changes: PlanChange) -> None:
    await creditd.server.reload_plans(msgspec.structs.replace(creditd.server.settings, plan_changes=list(changes)))


async def test_a_gradual_rollout_moves_a_stable_share_after_the_effective_date(two_plans: Harness) -> None:
    accounts = [f"6682424{n:04d}" for n in range(40)]
    for account_id in accounts:
        await two_plans.create_account(account_id, balance=1_000)
    await reload(two_plans, change(two_plans.clock.now_ms() + DAY_S * 1000, rollout_percent=30))
    for account_id in accounts:
        await two_plans.top_up(account_id, 1, "before")
    assert {(await two_plans.get(a)).plan for a in accounts} == {"standard"}
    two_plans.clock.advance(DAY_S + 1)
    for account_id in accounts:
        await two_plans.top_up(account_id, 1, "after")
    moved = {a for a in accounts if (await two_plans.get(a)).plan == "standard_2027"}
    assert moved == {a for a in accounts if in_rollout(a, 30)} and 0 < len(moved) < len(accounts)
    entry = next(e for e in await two_plans.ledger(sorted(moved)[0]) if e.kind == "plan")
    assert (entry.amount, entry.reference) == (0, "change c2027: standard -> standard_2027")
    assert ("plan_changed", "standard_2027 c2027") in two_plans.events_of(sorted(moved)[0])

    await reload(two_plans, change(two_plans.clock.now_ms() - 1, rollout_percent=100))
    for account_id in accounts:
        await two_plans.top_up(account_id, 1, "all")
        await two_plans.top_up(account_id, 1, "again")
    for account_id in accounts:
        assert (await two_plans.get(account_id)).plan == "standard_2027"
        assert [e.kind for e in await two_plans.ledger(account_id)].count("plan") == 1


async def test_an_open_session_keeps_its_price_until_its_next_grant(two_plans: Harness) -> None:
    account_id = "66824250000"
    await two_plans.create_account(account_id, balance=10_000)
    first = (await two_plans.charge("call", INITIAL, 0, account_id, [(VOICE, 60, 0)])).grants[0]
    assert first.granted == 60
    await reload(two_plans, change(two_plans.clock.now_ms() + 1_000))
    two_plans.clock.advance(2)
    used_at_old_price = await two_plans.charge("call", UPDATE, 1, account_id, [(VOICE, 60, 60)])
    assert used_at_old_price.grants[0].charged == 100 and (await two_plans.get(account_id)).plan == "standard_2027"
    at_new_price = await two_plans.charge("call", UPDATE, 2, account_id, [(VOICE, 60, 60)])
    assert at_new_price.grants[0].charged == 200


async def test_cohorts_by_tier_and_by_list(two_plans: Harness) -> None:
    await two_plans.create_account("66824260001")
    await two_plans.create_account("66824260002")
    await two_plans.create_account("66824260003")
    now_ms = two_plans.clock.now_ms()
    await reload(two_plans, change(now_ms, tiers=["gold"]))
    await two_plans.top_up("66824260001", 1, "t")
    assert (await two_plans.get("66824260001")).plan == "standard"  # basic, not gold
    await reload(two_plans, change(now_ms, accounts=["66824260002"]))
    await two_plans.top_up("66824260002", 1, "t")
    await two_plans.top_up("66824260003", 1, "t")
    assert (await two_plans.get("66824260002")).plan == "standard_2027"
    assert (await two_plans.get("66824260003")).plan == "standard"


@pytest.mark.parametrize(
    ("change_document", "message"),
    [
        ({"to_plan": "gold"}, "plan_changes[0].to_plan: unknown plan gold"),
        ({"from_plans": ["nope"]}, "plan_changes[0].from_plans: unknown plan nope"),
        ({"effective_at": datetime(2027, 1, 1)}, "plan_changes[0].effective_at: needs a time zone"),
        ({"rollout_percent": 101}, "rollout_percent"),
    ],
)
async def test_a_bad_plan_change_is_refused_naming_the_field(settings: Settings, change_document, message) -> None:
    document = msgspec.to_builtins(new_price_list(settings), builtin_types=(datetime,))
    entry = {"change_id": "c1", "to_plan": "standard_2027", "effective_at": datetime(2027, 1, 1, tzinfo=UTC)}
    document["plan_changes"] = [entry | change_document]
    with pytest.raises(ConfigError) as refused:
        parse_settings(document)
    assert message in str(refused.value)
