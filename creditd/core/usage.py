"""Usage records: what was used and what it cost, one per rated part of a unit, written by the Lua
functions into their partition's usage stream (lua/lib/usage.lua) and read back here through the same
merged, resumable feed as the events (core/feed.py), by id '<ms>-<seq>-<partition>'."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec

from creditd.core.feed import EventFeed, FeedEvent, Key
from creditd.settings import EventSettings
from creditd.store.connection import AnyRedis
from creditd.store.keys import usage_of_partition

# The first position: a feed from here delivers every record still kept.
OLDEST: Key = (0, 0, 0)


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
        return msgspec.convert({"id": record_id, **fields}, cls, strict=False)


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
