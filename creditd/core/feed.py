"""The event feed: every partition's outbox stream, merged into one ordered, resumable feed.

Functions append events to their partition's stream (cd:{p:<n>}:events) in the same call as the
change. The feed orders them by (stream ms, stream seq, partition) and names each by that triple,
'<ms>-<seq>-<partition>', so one id is a complete resume position: everything at or before it was
delivered, nothing after it was.

That needs one guarantee: no event may appear later with a smaller key than one already delivered.
Stream ids come from Redis' clock, which a function call reads once and which only moves forward, so
the feed delivers only entries older than Redis' own TIME minus a settle lag, and, when a stream
returned a full batch, nothing beyond the smallest key such a stream may still hold unread.
On a cluster each primary has its own clock: the horizon is the earliest of them, since an event
written later on any node carries at least that node's time. Streams of different slots cannot share
an XREAD there, so each partition gets its own, pipelined per node. A clock stepped backwards breaks
the guarantee: the feed still delivers such an event, and logs and counts it.

Every read is bounded by redis.call_timeout_s: when Redis does not answer (or fails), the feed ends
with Unavailable, and the watcher resumes from the last id it got.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import msgspec
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from creditd import metrics
from creditd.clock import raise_if_cancelled, wait_or_stop
from creditd.config.settings import EventSettings
from creditd.errors import InvalidArgument, Unavailable
from creditd.store.connection import AnyRedis, redis_time_ms
from creditd.store.keys import events_of_partition
from creditd.store.replies import as_text

log = logging.getLogger(__name__)
Answer = TypeVar("Answer")
MAX_SEQUENCE = 2**64 - 1
Key = tuple[int, int, int]  # stream ms, stream seq, partition
StreamReply = tuple[bytes | str, list[tuple[bytes, dict[bytes, bytes]]]]  # XREAD: stream, entries


class FeedEvent(msgspec.Struct, frozen=True):
    key: Key
    fields: dict[str, str]

    @property
    def id(self) -> str:
        return format_position(self.key)


def format_position(key: Key) -> str:
    return f"{key[0]}-{key[1]}-{key[2]}"


def parse_position(text: str, partitions: int, field: str = "from_id") -> Key:
    parts = text.split("-")
    if len(parts) != 3 or not all(part.isdigit() and len(part) <= 20 for part in parts):
        raise InvalidArgument(f"{field}: must be an event id '<ms>-<seq>-<partition>'")
    ms, seq, partition = (int(part) for part in parts)
    if partition >= partitions or seq > MAX_SEQUENCE:
        raise InvalidArgument(f"{field}: not an event id of this deployment")
    return ms, seq, partition


def stream_cursor(after: Key, partition: int) -> str:
    """The exclusive stream id from which partition `partition` continues after position `after`."""
    ms, seq, after_partition = after
    if partition <= after_partition:
        return f"{ms}-{seq}"
    if seq > 0:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-{MAX_SEQUENCE}" if ms > 0 else "0-0"


async def bounded(awaitable: Awaitable[Answer], timeout_s: float) -> Answer:
    """The awaitable's result within timeout_s; Unavailable naming Redis when it is late or fails."""
    try:
        async with asyncio.timeout(timeout_s):
            return await awaitable
    except TimeoutError:
        raise Unavailable(f"redis: no answer within {timeout_s:g} s; resume from the last event id") from None
    except (RedisError, OSError) as error:
        raise Unavailable(f"redis: {type(error).__name__}: {error}; resume from the last event id") from None


class EventFeed:
    def __init__(
        self,
        client: AnyRedis,
        partitions: int,
        settings: EventSettings,
        timeout_s: float,
        stream_of_partition: Callable[[int], str] = events_of_partition,
    ) -> None:
        """stream_of_partition: which stream of each partition the feed merges (the events, or the
        usage records of core/usage.py)."""
        self._client = client
        self.timeout_s = timeout_s
        self._partitions = partitions
        self._settings = settings
        self._keys = [stream_of_partition(partition) for partition in range(partitions)]

    async def now_position(self) -> Key:
        """Just before Redis' current millisecond: an event written from now on has a stream ms at
        least this one (an event of this very millisecond written just before may come too)."""
        return (await bounded(redis_time_ms(self._client), self.timeout_s) - 1, MAX_SEQUENCE, self._partitions)

    async def follow(
        self, after: Key | None, stopping: asyncio.Event, stop_when_idle: bool = False
    ) -> AsyncIterator[FeedEvent]:
        """Yields every event after `after` (None: from now), in order, until `stopping` is set (or,
        stop_when_idle, until a read finds nothing more to deliver)."""
        position = after if after is not None else await self.now_position()
        cursors = {key: stream_cursor(position, partition) for partition, key in enumerate(self._keys)}
        delivered = position
        while not stopping.is_set():
            raise_if_cancelled()  # a stream's consumer may go on while its client is gone
            deliverable = await bounded(self._read(cursors), self.timeout_s)
            for event in deliverable:
                cursors[self._keys[event.key[2]]] = f"{event.key[0]}-{event.key[1]}"
                if event.key < delivered:
                    metrics.EVENTS_OUT_OF_ORDER.inc()
                    log.warning(
                        "event %s came after %s: a Redis clock stepped back", event.id, format_position(delivered)
                    )
                delivered = max(delivered, event.key)
                yield event
            if not deliverable:
                if stop_when_idle:
                    return
                await wait_or_stop(stopping, self._settings.poll_interval_s)

    async def _read_streams(self, cursors: dict[str, str]) -> list[StreamReply]:
        batch = self._settings.batch_size
        if not isinstance(self._client, RedisCluster):
            streams: dict[Any, Any] = dict(cursors)  # redis-py types stream ids as a union of key kinds
            return cast(list[StreamReply], await self._client.xread(streams, count=batch) or [])
        pipe = self._client.pipeline(transaction=False)
        for key, cursor in cursors.items():
            pipe.xread({key: cursor}, count=batch)
        return [stream for reply in await pipe.execute() for stream in reply or []]

    async def _read(self, cursors: dict[str, str]) -> list[FeedEvent]:
        horizon_ms = await redis_time_ms(self._client) - self._settings.settle_ms
        batch = self._settings.batch_size
        replies = await self._read_streams(cursors)
        events: list[FeedEvent] = []
        bound: Key | None = None
        for stream, entries in replies:
            partition = self._keys.index(as_text(stream))
            for entry_id, fields in entries:
                ms, seq = (int(part) for part in as_text(entry_id).split("-"))
                events.append(FeedEvent((ms, seq, partition), {as_text(k): as_text(v) for k, v in fields.items()}))
            if len(entries) == batch:  # more may wait unread in this stream: nothing past its last entry
                last = events[-1].key
                bound = last if bound is None else min(bound, last)
        events.sort(key=lambda event: event.key)
        return [e for e in events if e.key[0] < horizon_ms and (bound is None or e.key <= bound)]
