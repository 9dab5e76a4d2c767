"""Usage records: what was used and what it cost, one per rated part of a unit, written by the Lua
functions into their partition's usage stream (lua/lib/usage.lua) and read back here through the same
merged, resumable feed as the events (core/feed.py), by id '<ms>-<seq>-<partition>'."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec

from creditd.config.settings import EventSettings
from creditd.core.feed import EventFeed, FeedEvent, Key
from creditd.store.connection import AnyRedis
from creditd.store.keys import usage_of_partition

# The first position: a feed from here delivers every record still kept.
OLDEST: Key = (0, 0, 0)
# A record's values in its one 'usage' field, tab-joined, in this order (lua/lib/usage.lua).
RECORD_FIELD, RECORD_VALUES = (
    "usage",
    (
        "time_ms",
        "account_id",
        "gateway_id",
        "session_id",
        "request_number",
        "rating_group",
        "service_id",
        "unit",
        "units",
        "charged",
        "from_buckets",
        "tariff",
        "destination",
        "zone",
        "dealer",
        "provider",
        "actor",
        "reference",
        "bonus",
    ),
)


def usage_fields(fields: dict[str, str]) -> dict[str, str]:
    """A stream entry's record by name: its 'usage' field split, or, for a record written before it,
    the entry's own fields."""
    packed = fields.get(RECORD_FIELD)
    if packed is None:
        return fields
    values = packed.split("\t")
    if len(values) != len(RECORD_VALUES):
        raise ValueError(f"usage record with {len(values)} values, expected {len(RECORD_VALUES)}")
    return dict(zip(RECORD_VALUES, values, strict=True))


class Usage(msgspec.Struct, frozen=True):
    id: str
    time_ms: int
    account_id: str
    gateway_id: str
    session_id: str
    request_number: int
    rating_group: int
    service_id: int
    unit: int
    units: int
    charged: int
    from_buckets: int
    tariff: str
    destination: str
    zone: str
    dealer: str
    provider: str
    actor: str
    reference: str
    # Of charged, what bonus money paid (the ledger debited the rest); absent from the record: 0.
    bonus: int = 0

    @classmethod
    def of(cls, event: FeedEvent) -> Usage:
        return cls.of_fields(event.id, event.fields)

    @classmethod
    def of_fields(cls, record_id: str, fields: dict[str, str]) -> Usage:
        return msgspec.convert({"id": record_id, **usage_fields(fields)}, cls, strict=False)


FIELDS = Usage.__struct_fields__


def usage_feed(client: AnyRedis, partitions: int, settings: EventSettings, timeout_s: float) -> EventFeed:
    return EventFeed(client, partitions, settings, timeout_s, stream_of_partition=usage_of_partition)


async def read_usage(feed: EventFeed, after: Key, until: Key | None = None) -> AsyncIterator[Usage]:
    """Every record after `after` (and up to `until`), in order, then stops once caught up."""
    stopping = asyncio.Event()
    async for event in feed.follow(after, stopping, stop_when_idle=True):
        if until is not None and event.key > until:
            return
        yield Usage.of(event)
