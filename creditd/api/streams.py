"""The streaming RPCs: Accounts.WatchEvents (the whole feed), Accounts.WatchUsage (the usage records)
and CreditControl.WatchNotifications (REAUTH and ABORT_SESSION for one gateway's sessions), all
resumable by id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

from creditd.api.messages import NOTIFICATION_KINDS, event_message, notification_message, usage_message
from creditd.core.feed import EventFeed, Key, bounded, parse_position
from creditd.core.usage import Usage
from creditd.errors import ResourceExhausted
from creditd.store.connection import AnyRedis
from creditd.store.keys import gateway_position
from creditd.v1 import creditd_pb2 as pb

log = logging.getLogger(__name__)


class Watchers:
    """Bounds concurrent streams per process and ends them all when the server stops."""

    def __init__(
        self,
        feed: EventFeed,
        usage_feed: EventFeed,
        client: AnyRedis,
        partitions: int,
        limit: int,
        stopping: asyncio.Event,
    ) -> None:
        self.feed = feed
        self.usage_feed = usage_feed
        self.client = client
        self.partitions = partitions
        self.stopping = stopping
        self._limit = limit
        self._active = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if self._active >= self._limit:
            raise ResourceExhausted(f"watchers: this process already serves {self._limit} streams")
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1

    def position(self, text: str) -> Key | None:
        return parse_position(text, self.partitions) if text else None


async def watch_events(watchers: Watchers, request: pb.WatchEventsRequest) -> AsyncIterator[pb.Event]:
    after = watchers.position(request.from_id)
    with watchers.slot():
        async for event in watchers.feed.follow(after, watchers.stopping):
            yield event_message(event)


async def watch_usage(watchers: Watchers, request: pb.WatchUsageRequest) -> AsyncIterator[pb.UsageRecord]:
    after = watchers.position(request.from_id)
    with watchers.slot():
        async for event in watchers.usage_feed.follow(after, watchers.stopping):
            yield usage_message(Usage.of(event))


async def watch_notifications(
    watchers: Watchers, request: pb.WatchNotificationsRequest
) -> AsyncIterator[pb.Notification]:
    after = watchers.position(request.from_id)
    position_key = gateway_position(request.gateway_id)
    if after is None:
        stored = await bounded(watchers.client.get(position_key), watchers.feed.timeout_s)
        after = watchers.position(stored.decode() if isinstance(stored, bytes) else stored) if stored else None
    with watchers.slot():
        async for event in watchers.feed.follow(after, watchers.stopping):
            if event.fields.get("gateway_id") != request.gateway_id or event.fields["kind"] not in NOTIFICATION_KINDS:
                continue
            yield notification_message(event)
            # Written after the message is handed to gRPC: a gateway may see one again, never miss one.
            await bounded(watchers.client.set(position_key, event.id), watchers.feed.timeout_s)
