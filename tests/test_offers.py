"""Bundle offers (core/offers.py and the notifier): the recommendation replays 30 days of daily data
use against each data bundle of the sample catalogue (data_1gb 99.00 for 30 days, data_5gb 199.00,
the day pass data_day_2gb 29.00) and picks the cheapest that covers it, by hand-computed cases; end
to end on a real server, a subscriber who opted in and whose 1 GB bundle runs out in one day hears
of it and is offered the day pass (the notifier's pass folded the usage into the summary first), in their
language, through a real HTTP endpoint; one who did not opt in is told the bundle ran out and is
offered nothing."""

from __future__ import annotations

import pytest

from creditd.config.settings import Settings, load_settings
from creditd.core.offers import purchases_needed, recommend
from creditd.core.usage_summary import DayTotal, last_days
from creditd.formatting import bundle_of
from creditd.resources import default_config_path
from creditd.store.codes import Unit
from creditd.v1 import creditd_pb2 as pb
from tests.harness import DATA, INITIAL, TERMINATE, ServerAt
from tests.test_channels import http_server
from tests.test_notifier import ACCOUNT, notifier_for, posted
from tests.test_rating import bangkok_ms

NOW = bangkok_ms("2027-03-31T12:00:00")
MB = 1_000_000
PLAN = load_settings(default_config_path()).plans["standard"]
BUNDLES = {bundle.bundle_id: bundle for bundle in PLAN.bundles}


def month(uses: dict[int, int], zone: str = "home", rating_group: int = DATA) -> list[DayTotal]:
    """Daily totals: {days ago: bytes}."""
    days = last_days(NOW, "Asia/Bangkok", 30)
    return [DayTotal(days[29 - ago], rating_group, Unit.BYTES, zone, used, 0, 1) for ago, used in uses.items()]


def offer_of(totals: list[DayTotal]) -> tuple[str, int, int] | None:
    offer = recommend(PLAN, totals, NOW, "Asia/Bangkok")
    return None if offer is None else (offer.bundle_id, offer.purchases, offer.total_minor)


def test_steady_use_is_offered_the_bundle_that_covers_the_month_for_least() -> None:
    assert offer_of(month({ago: 30 * MB for ago in range(30)})) == ("data_1gb", 1, 9_900)  # 900 MB
    assert offer_of(month({ago: 100 * MB for ago in range(30)})) == ("data_5gb", 1, 19_900)  # 3 GB: not 3 x 99
    assert offer_of(month({ago: 400 * MB for ago in range(30)})) == ("data_5gb", 3, 59_700)  # 12 GB


def test_a_few_heavy_days_are_offered_the_day_pass() -> None:
    assert offer_of(month({3: 1_500 * MB, 10: 1_800 * MB})) == ("data_day_2gb", 2, 5_800)
    # one day above the pass's 2 GB needs two passes that day: still cheaper than 5 GB
    assert offer_of(month({1: 3_000 * MB})) == ("data_day_2gb", 2, 5_800)


def test_only_use_the_bundles_would_serve_counts() -> None:
    assert offer_of(month({1: 500 * MB}, zone="roaming")) is None  # the data bundles serve at home only
    assert offer_of(month({1: 500 * MB}, rating_group=9)) is None
    assert offer_of([]) is None
    assert offer_of([DayTotal("20270101", DATA, Unit.BYTES, "home", 500 * MB, 0, 1)]) is None  # before the 30 days


def test_a_bundle_lasts_its_validity_and_then_a_new_one_is_bought() -> None:
    thirty_day = BUNDLES["data_1gb"]
    assert purchases_needed(thirty_day, [600 * MB] + [0] * 28 + [600 * MB]) == 2  # 1.2 GB in 30 days
    assert purchases_needed(BUNDLES["data_day_2gb"], [MB] * 30) == 30
    assert purchases_needed(BUNDLES["data_5gb"], [0] * 30) == 0


async def use_up_a_gigabyte(creditd: object, opt_in: bool) -> None:
    await creditd.create_account(ACCOUNT, balance=20_000)  # type: ignore[attr-defined]
    preferences = pb.Preferences(channels=["webhook"], language="en", marketing_opt_in=opt_in)
    await creditd.accounts.SetPreferences(pb.SetPreferencesRequest(account_id=ACCOUNT, preferences=preferences))  # type: ignore[attr-defined]
    buy = pb.PurchaseBundleRequest(account_id=ACCOUNT, bundle_id="data_1gb", idempotency_key="buy-1")
    await creditd.accounts.PurchaseBundle(buy)  # type: ignore[attr-defined]
    await creditd.charge("d1", INITIAL, 0, ACCOUNT, [(DATA, 1_000_000_000, 0)])  # type: ignore[attr-defined]
    await creditd.charge("d1", TERMINATE, 1, ACCOUNT, [(DATA, 0, 1_000_000_000)])  # type: ignore[attr-defined]


@pytest.mark.asyncio
@pytest.mark.parametrize("opt_in", [True, False])
async def test_a_used_up_data_bundle_brings_an_offer_to_those_who_opted_in(
    server_at: ServerAt, settings: Settings, opt_in: bool
) -> None:
    with http_server() as endpoint:
        async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
            notifier = notifier_for(creditd, f"http://127.0.0.1:{endpoint.server_port}/", settings)
            await use_up_a_gigabyte(creditd, opt_in)
            await notifier.pass_once()  # folds the usage into the summary, then tells
            notices = {notice["kind"]: notice["text"] for notice in posted(endpoint)}
            if not opt_in:
                assert "offer" not in notices and "bundle_used_up" in notices
                return
            assert "bundle_used_up" in notices
            assert notices["offer"].startswith("data_day_2gb for THB29.00 would have covered your last 30 days")


def test_the_bundle_of_a_bucket_is_found_through_its_rollovers() -> None:
    """An offer (and a notice's bundle name) follows a bucket back to its bundle: bought
    ('data_1gb.12'), rolled over ('data_1gb.12.r1'); other ids are their own name."""
    assert [bundle_of(b) for b in ("data_1gb.12", "data_day_2gb.7.r2", "b1", "promo.x")] == [
        "data_1gb",
        "data_day_2gb",
        "b1",
        "promo.x",
    ]
