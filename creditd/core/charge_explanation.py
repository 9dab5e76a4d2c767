"""'Why was I charged this?': an account's newest usage records, and each one explained by the tariff
that rated it (its destination, zone, time band, block size and price) for the care console.

Usage records are kept per partition (core/usage_log.py), not per account: the account's partition
stream is read newest first and filtered, up to a bounded number of records, so a busy partition costs
at most `scan_limit` entries a page view. The explanation reads the tariff from the plan as configured
now; when the record's charge differs from what that tariff gives (a price changed since, a rerate),
it says so rather than inventing a reason.
"""

from __future__ import annotations

from typing import NamedTuple

from creditd.config.plans import Plan
from creditd.core.feed import format_position
from creditd.core.usage import Usage
from creditd.store.connection import AnySyncRedis
from creditd.store.keys import partition_of, usage_of_partition
from creditd.store.replies import as_text
from creditd.store.scan import MAX_STREAM_SCAN, newest_pages

UNIT_NAMES = {1: "BYTES", 2: "SECONDS", 3: "EVENTS", 4: "MONEY"}


class Explained(NamedTuple):
    record: Usage
    unit: str
    # Units paid with money: used less those taken from bundles.
    paid_units: int
    blocks: int
    block_size: int
    price_minor: int
    timing: str
    # The sentence shown to the agent.
    why: str


def recent_usage(
    client: AnySyncRedis, partitions: int, account_id: str, limit: int, scan_limit: int = MAX_STREAM_SCAN
) -> list[Usage]:
    """The account's newest `limit` usage records, newest first, among its partition's newest
    `scan_limit` entries."""
    partition = partition_of(account_id, partitions)
    found: list[Usage] = []
    for entries in newest_pages(client, usage_of_partition(partition), scan_limit):
        for entry_id, raw in entries:
            fields = {as_text(name): as_text(value) for name, value in (raw or {}).items()}
            ms, seq = (int(part) for part in as_text(entry_id).split("-"))
            record = Usage.of_fields(format_position((ms, seq, partition)), fields)
            if record.account_id == account_id:
                found.append(record)
                if len(found) == limit:
                    return found
    return found


def explain(record: Usage, plan: Plan | None) -> Explained:
    unit = UNIT_NAMES.get(record.unit, str(record.unit))
    paid_units = max(0, record.units - record.from_buckets)
    tariff = next((t for t in plan.tariffs if t.name == record.tariff), None) if plan is not None else None
    where = f"destination {record.destination or 'any'}, zone {record.zone or 'home'}"
    bundle = f"; {record.from_buckets} from bundles" if record.from_buckets else ""
    bonus = f"; {record.bonus} of it paid by bonus money" if record.bonus else ""
    if tariff is None:
        why = (
            f"{record.units} {unit} ({where}){bundle}: charged {record.charged} by tariff {record.tariff or '-'}, "
            "which the plan no longer has"
        )
        return Explained(record, unit, paid_units, 0, 0, 0, "", why + bonus)
    blocks = -(-paid_units // tariff.block_size)
    computed = blocks * tariff.price_minor
    timing = f"time band {tariff.timing}" if tariff.timing else "no time band"
    why = (
        f"{record.units} {unit} ({where}, {timing}){bundle}: tariff {tariff.name} charges {tariff.price_minor} "
        f"per started block of {tariff.block_size} {unit}; {paid_units} paid {unit} = {blocks} block(s) = {computed}"
    )
    if computed != record.charged:
        why += f"; charged {record.charged} (the tariff or the account differed when it was charged)"
    return Explained(record, unit, paid_units, blocks, tariff.block_size, tariff.price_minor, timing, why + bonus)
