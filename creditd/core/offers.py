"""Bundle offers: which data bundle of the plan's catalogue would have covered the subscriber's data
use of the last 30 days at the lowest price. A recommendation only: nothing is bought.

Each data bundle is tried against the account's daily totals (core/usage_summary.py), replayed day
by day as if the subscriber had bought it whenever they had data to use and none left: a purchase
lasts its validity (in whole days) and serves the rating groups and zones a bucket of it would
serve. The offer is the bundle with the lowest total price (fewer purchases break a tie, then the
catalogue's order). A month that used no data gets no offer.
"""

from __future__ import annotations

import msgspec

from creditd.config.plans import Bundle, Plan
from creditd.core.usage_summary import DayTotal, last_days
from creditd.store.codes import Unit

LOOK_BACK_DAYS = 30
DAY_S = 86_400


class Offer(msgspec.Struct, frozen=True):
    bundle_id: str
    price_minor: int
    purchases: int  # how many of it the month would have needed
    total_minor: int
    data_used: int  # bytes over the month that the bundle serves


def serves(bundle: Bundle, total: DayTotal) -> bool:
    if total.unit != Unit.BYTES:
        return False
    if bundle.rating_groups and total.rating_group not in bundle.rating_groups:
        return False
    return total.zone in (bundle.zones or ["home"])


def purchases_needed(bundle: Bundle, daily_use: list[int]) -> int:
    """How many of the bundle the days' use (oldest first) would have taken."""
    validity_days = -(-bundle.validity_s // DAY_S) if bundle.validity_s else len(daily_use)
    purchases, left, last_day = 0, 0, -1
    for day, use in enumerate(daily_use):
        if day > last_day:
            left = 0  # the last one expired
        while use > 0:
            if left == 0:
                purchases, left, last_day = purchases + 1, bundle.amount, day + validity_days - 1
            taken = min(use, left)
            use, left = use - taken, left - taken
    return purchases


def recommend(plan: Plan, totals: list[DayTotal], now_ms: int, time_zone: str) -> Offer | None:
    days = last_days(now_ms, time_zone, LOOK_BACK_DAYS)
    best: Offer | None = None
    for bundle in plan.bundles:
        if bundle.unit != "BYTES":
            continue
        by_day = dict.fromkeys(days, 0)
        for total in totals:
            if total.day in by_day and serves(bundle, total):
                by_day[total.day] += total.units
        daily_use = list(by_day.values())
        if not any(daily_use):
            continue
        purchases = purchases_needed(bundle, daily_use)
        offer = Offer(bundle.bundle_id, bundle.price_minor, purchases, purchases * bundle.price_minor, sum(daily_use))
        if best is None or (offer.total_minor, offer.purchases) < (best.total_minor, best.purchases):
            best = offer
    return best
