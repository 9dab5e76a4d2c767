"""The streaming RPCs: Accounts.WatchEvents (the whole feed) and CreditControl.WatchNotifications
(REAUTH and ABORT_SESSION for one gateway's sessions), both resumable by event id."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc

from creditd import logs, metrics
from creditd.core.feed import EventFeed, FeedEvent, Key, parse_position
from creditd.errors import CreditdError, ResourceExhausted, grpc_status_of
from creditd.store.connection import AnyRedis
from creditd.store.keys import gateway_position
from creditd.v1 import creditd_pb2 as pb

log = logging.getLogger(__name__)
NOTIFICATION_KINDS = {"REAUTH": pb.Notification.REAUTH, "ABORT_SESSION": pb.Notification.ABORT_SESSION}


def grpc_stream_errors(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """grpc_errors for server-streaming handlers (async generators)."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        logs.REQUEST_ID.set(logs.new_request_id())
        try:
            logs.CALLER.set(self.authorizer.check(context, name))
            log.info("%s started (%s)", name, getattr(request, "gateway_id", "") or "all events")
            async for message in method(self, request, context):
                yield message
            metrics.REQUESTS.labels(name, "OK").inc()
        except CreditdError as error:
            metrics.REQUESTS.labels(name, grpc_status_of(error).name).inc()
            await context.abort(grpc_status_of(error), error.message)

    return wrapper


class Watchers:
    """Bounds concurrent streams per process and ends them all when the server stops."""

    def __init__(self, feed: EventFeed, client: AnyRedis, partitions: int, limit: int,
                 stopping: asyncio.Event) -> None:  # fmt: skip
        self.feed = feed
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


def event_message(event: FeedEvent) -> pb.Event:
    attributes = dict(event.fields)
    kind, account_id = attributes.pop("kind"), attributes.pop("account_id")
    time_ms = int(attributes.pop("time_ms"))
    return pb.Event(id=event.id, kind=kind, account_id=account_id, time_ms=time_ms, attributes=attributes)


def notification_message(event: FeedEvent) -> pb.Notification:
    fields = event.fields
    return pb.Notification(
        kind=NOTIFICATION_KINDS[fields["kind"]],
        session_id=fields["session_id"],
        account_id=fields["account_id"],
        reason=fields["detail"],
        id=event.id,
    )


async def watch_events(watchers: Watchers, request: pb.WatchEventsRequest) -> AsyncIterator[pb.Event]:
    after = watchers.position(request.from_id)
    with watchers.slot():
        async for event in watchers.feed.follow(after, watchers.stopping):
            yield event_message(event)


async def watch_notifications(
    watchers: Watchers, request: pb.WatchNotificationsRequest
) -> AsyncIterator[pb.Notification]:
    after = watchers.position(request.from_id)
    position_key = gateway_position(request.gateway_id)
    if after is None:
        stored = await watchers.client.get(position_key)
        after = watchers.position(stored.decode()) if stored else None
    with watchers.slot():
        async for event in watchers.feed.follow(after, watchers.stopping):
            if event.fields.get("gateway_id") != request.gateway_id or event.fields["kind"] not in NOTIFICATION_KINDS:
                continue
            yield notification_message(event)
            # Written after the message is handed to gRPC: a gateway may see one again, never miss one.
            await watchers.client.set(position_key, event.id)
