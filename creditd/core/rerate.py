"""Rerating: every usage record of a window priced again with the tariffs configured now, and per
account one adjustment for the difference (docs/design.md, Usage records).

A record is priced again by the tariff that matches its context (rating group, service, destination
and zone names, its time) today: the units not taken from bundles at that tariff's price. A record
that charged nothing (from a bundle, throttled, capped, or a free tariff) stays free, and one that no
tariff matches any more keeps its price (counted as unrated). The adjustment's idempotency key is
derived from the window, the configuration's hash and the account, so a second run with the same
configuration posts nothing new; its reason is 'rerate <from>/<to> <config hash>'.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import msgspec

from creditd.config.rating import matching_tariff
from creditd.config.settings import Settings
from creditd.core.usage import OLDEST, Usage
from creditd.core.usage_log import iter_usage
from creditd.errors import CreditdError
from creditd.store.calls import Calls
from creditd.store.connection import AnySyncRedis
from creditd.store.functions import call_all_sync
from creditd.store.replies import ADJUST_DECODER


class RerateRow(msgspec.Struct):
    account_id: str
    records: int = 0
    charged: int = 0
    rerated: int = 0
    unrated: int = 0
    # What the account gets back (> 0) or is debited (< 0): charged - rerated.
    adjustment: int = 0
    posted: bool = False
    replayed: bool = False
    error: str = ""


def rerated_price(settings: Settings, plan_name: str, record: Usage) -> int | None:
    """What the record costs with today's tariffs; None when no tariff matches its context now."""
    plan = settings.plans.get(plan_name)
    if record.charged == 0:
        return 0
    tariff = plan and matching_tariff(
        settings, plan, record.rating_group, record.service_id, record.destination, record.zone, record.time_ms
    )
    if not tariff:
        return None
    return -(-(record.units - record.from_buckets) // tariff.block_size) * tariff.price_minor


def window_rows(
    client: AnySyncRedis,
    settings: Settings,
    window: tuple[int, int],
    accounts: frozenset[str],
    plans: Callable[[str], str],
) -> dict[str, RerateRow]:
    """The records of [from_ms, to_ms) (of the accounts given, or all), priced again, per account."""
    rows: dict[str, RerateRow] = {}
    records: Iterable[Usage] = iter_usage(client, settings.redis.partitions, OLDEST, settings.events.settle_ms)
    for record in records:
        if not window[0] <= record.time_ms < window[1] or (accounts and record.account_id not in accounts):
            continue
        row = rows.setdefault(record.account_id, RerateRow(record.account_id))
        price = rerated_price(settings, plans(record.account_id), record)
        row.records += 1
        # Only main money is rerated: bonus money paid its part of both prices, and is not given back.
        row.charged += record.charged - record.bonus
        if price is None:
            row.unrated += 1
            price = record.charged
        row.rerated += max(0, price - record.bonus)
        row.adjustment = row.charged - row.rerated
    return rows


def window_text(window: tuple[int, int]) -> str:
    return "/".join(datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for ms in window)


def idempotency_key(window: tuple[int, int], config_hash: str, account_id: str) -> str:
    digest = hashlib.sha1(f"{window[0]}/{window[1]}/{config_hash}/{account_id}".encode()).hexdigest()
    return f"rerate-{digest[:32]}"


def post_adjustments(
    client: AnySyncRedis,
    calls: Calls,
    rows: Iterable[RerateRow],
    window: tuple[int, int],
    config_hash: str,
    now_ms: int,
    actor: str,
) -> None:
    """One adjustment per account whose rerated price differs; marks each row posted or replayed."""
    due = [row for row in rows if row.adjustment]
    reason = f"rerate {window_text(window)} {config_hash}"
    commands = [
        calls.adjust(
            row.account_id, row.adjustment, reason, idempotency_key(window, config_hash, row.account_id), now_ms, actor
        )
        for row in due
    ]
    for row, outcome in zip(due, call_all_sync(client, commands), strict=True):
        if isinstance(outcome, CreditdError):
            row.error = outcome.message
            continue
        answer = ADJUST_DECODER.decode(outcome.body)
        row.posted, row.replayed = not answer.replayed, bool(answer.replayed)
