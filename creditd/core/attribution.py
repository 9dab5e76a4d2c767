"""Who answers for the arrears: by dealer (the outlet that signed the customer answers for them) and
by provider (a content or service provider's settlement is reduced by the debt its services ran up),
and a provider's settlement for a window.

An account's debt goes to providers in proportion to what each one's tariffs charged it since it was
last in credit (the newest kept ledger entry that left its balance at or above zero); what the
operator's own services charged, or debt with no usage behind it (a late fee), stays with the
operator (''). Integer shares by largest remainder, so that every report sums to the total arrears.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import msgspec

from creditd.config.settings import Settings
from creditd.core.jobs import ArrearsRow
from creditd.core.usage import OLDEST
from creditd.core.usage_log import iter_usage
from creditd.store.connection import AnySyncRedis
from creditd.store.keys import Keys

OPERATOR = ""


class Settlement(msgspec.Struct):
    provider: str
    revenue: int
    arrears: int
    net: int


def apportion(amount: int, weights: Mapping[str, int]) -> dict[str, int]:
    """amount split in proportion to weights, in integers summing to amount (largest remainder)."""
    total = sum(weights.values())
    if amount == 0 or total <= 0:
        return {OPERATOR: amount} if amount else {}
    shares = {name: amount * weight // total for name, weight in weights.items()}
    remainders = sorted(weights, key=lambda name: (-(amount * weights[name] % total), name))
    for name in remainders[: amount - sum(shares.values())]:
        shares[name] += 1
    return {name: share for name, share in shares.items() if share}


def arrears_by_dealer(rows: Iterable[ArrearsRow]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.debt:
            totals[row.dealer] += row.debt
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def _last_in_credit_ms(client: AnySyncRedis, keys: Keys, account_id: str) -> int:
    newest_in_credit = 0
    for raw in client.lrange(keys.ledger(account_id), 0, -1):
        text = raw.decode() if isinstance(raw, bytes) else raw
        _, time_ms, _, _, balance_after, _ = text.split("|", 5)
        if int(balance_after) >= 0:
            newest_in_credit = int(time_ms)
    return newest_in_credit


def provider_charges_since_credit(
    client: AnySyncRedis, settings: Settings, account_ids: Iterable[str]
) -> dict[str, dict[str, int]]:
    """Per account: what each provider's tariffs charged it since it was last in credit."""
    keys = Keys(settings.redis.partitions)
    since = {account_id: _last_in_credit_ms(client, keys, account_id) for account_id in account_ids}
    charges: dict[str, dict[str, int]] = {account_id: defaultdict(int) for account_id in since}
    for record in iter_usage(client, settings.redis.partitions, OLDEST, settings.events.settle_ms):
        start_ms = since.get(record.account_id)
        # Bonus money never makes debt: only the main money a record charged is shared in it.
        if start_ms is not None and record.time_ms >= start_ms and record.charged > record.bonus:
            charges[record.account_id][record.provider] += record.charged - record.bonus
    return charges


def arrears_by_provider(client: AnySyncRedis, settings: Settings, rows: Iterable[ArrearsRow]) -> dict[str, int]:
    debts = {row.account_id: row.debt for row in rows if row.debt}
    charges = provider_charges_since_credit(client, settings, debts)
    totals: dict[str, int] = defaultdict(int)
    for account_id, debt in debts.items():
        for provider, share in apportion(debt, charges[account_id]).items():
            totals[provider] += share
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def settlement(
    client: AnySyncRedis, settings: Settings, provider: str, window: tuple[int, int], arrears: Mapping[str, int]
) -> Settlement:
    """The provider's revenue in [from_ms, to_ms), less the arrears apportioned to it now."""
    revenue = sum(
        record.charged
        for record in iter_usage(client, settings.redis.partitions, OLDEST, settings.events.settle_ms)
        if record.provider == provider and window[0] <= record.time_ms < window[1]
    )
    owed = arrears.get(provider, 0)
    return Settlement(provider, revenue, owed, revenue - owed)
