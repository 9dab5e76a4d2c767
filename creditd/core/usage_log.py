"""Batch reads of the usage records for the tools (export, rerate, reports): every partition's usage
stream read in pages and merged in feed order, '<ms>-<seq>-<partition>', with the feed's guarantee
(core/feed.py): only records older than Redis' clock minus the settle lag, so that a later run from
the last id printed misses nothing. Constant memory: one page per partition at a time."""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from redis.cluster import RedisCluster

from creditd.core.feed import Key, format_position, stream_cursor
from creditd.core.usage import Usage
from creditd.store.connection import AnySyncRedis
from creditd.store.keys import usage_of_partition
from creditd.store.replies import as_text

PAGE = 1000
# Where an exporter records how far it got: read by the metrics endpoint (oldest unexported record).
EXPORTED_POSITION_KEY = "cd:usage:exported"


def redis_time_ms(client: AnySyncRedis) -> int:
    """The earliest primary clock, in ms (see store/connection.redis_time_ms)."""
    if isinstance(client, RedisCluster):
        replies = client.time(target_nodes=RedisCluster.PRIMARIES)
        times = list(replies.values()) if isinstance(replies, dict) else [replies]
    else:
        times = [client.time()]
    return min(int(seconds) * 1000 + int(microseconds) // 1000 for seconds, microseconds in times)


def _partition_records(client: AnySyncRedis, partition: int, after: Key, page: int) -> Iterator[tuple[Key, Usage]]:
    key, cursor = usage_of_partition(partition), stream_cursor(after, partition)
    while True:
        entries = client.xrange(key, f"({cursor}", "+", count=page) or []
        for entry_id, raw in entries:
            cursor = as_text(entry_id or b"")
            ms, seq = (int(part) for part in cursor.split("-"))
            position = (ms, seq, partition)
            fields = {as_text(name): as_text(value) for name, value in (raw or {}).items()}
            yield position, Usage.of_fields(format_position(position), fields)
        if len(entries) < page:
            return


def iter_usage(
    client: AnySyncRedis, partitions: int, after: Key, settle_ms: int, until: Key | None = None, page: int = PAGE
) -> Iterator[Usage]:
    """Every kept record after `after` (up to `until`), in order, up to Redis' clock minus settle_ms."""
    horizon_ms = redis_time_ms(client) - settle_ms
    streams = [_partition_records(client, partition, after, page) for partition in range(partitions)]
    for position, record in heapq.merge(*streams, key=lambda item: item[0]):
        if position[0] >= horizon_ms or (until is not None and position > until):
            return
        yield record


def count_usage(client: AnySyncRedis, partitions: int) -> int:
    """How many records are kept (for a progress bar)."""
    pipe = client.pipeline(transaction=False)
    for partition in range(partitions):
        pipe.xlen(usage_of_partition(partition))
    return sum(pipe.execute())
