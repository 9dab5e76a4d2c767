"""One account's notices on one channel go out in the order of their events, across retries and
restarts: while a notice waits for a retry (its channel failed), a notice of a later event of the same
account on that channel is held behind it (state `held`, due just after it) instead of going first,
and is checked again when due (superseded by then, it is dropped as any other).

The notices that wait per account and channel are a small sorted set, `deliveries_waiting` (event ids
by their ms; plain commands, like every key of the notifier's): a notice joins it when it is
scheduled for a retry or held, and leaves it when its delivery ends (sent, suppressed or dead). An
entry whose notice is no longer due (a crash between the two writes) is dropped when met.

Only notices of the event feed keep this order (their ids are stream ids, '<ms>-<seq>', ordered
within the account's partition); a sign-in code the subscriber asked for, an offer and a campaign
never wait for another notice."""

from __future__ import annotations

import re
from typing import Any

from creditd.core.notices import NoticeEvent
from creditd.store.connection import AnyRedis
from creditd.store.keys import notifier_key
from creditd.store.replies import as_text

HELD = "held"
STREAM_ID = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")


def event_order(event_id: str) -> tuple[int, int] | None:
    """A feed event's place in its partition's stream; None for a notice not from the feed."""
    found = STREAM_ID.fullmatch(event_id)
    return (int(found.group(1)), int(found.group(2))) if found else None


def waiting_key(partition: int, event: NoticeEvent, channel: str) -> str:
    return notifier_key("deliveries_waiting", partition, event.account_id, channel)


def join(pipe: Any, partition: int, event: NoticeEvent, channel: str, retention_s: int) -> None:
    """Adds to a pipeline the writes that put a notice among those waiting on its channel."""
    order = event_order(event.id)
    if order is not None:
        key = waiting_key(partition, event, channel)
        pipe.zadd(key, {event.id: order[0]})
        pipe.expire(key, retention_s)


async def leave(client: AnyRedis, partition: int, event: NoticeEvent, channel: str) -> None:
    if event_order(event.id) is not None:
        await client.zrem(waiting_key(partition, event, channel), event.id)


async def due_ahead(client: AnyRedis, partition: int, event: NoticeEvent, channel: str) -> int | None:
    """When the earliest notice of an earlier event of the account, waiting on this channel, is due
    (Unix ms); None when none waits."""
    order = event_order(event.id)
    if order is None:
        return None
    key = waiting_key(partition, event, channel)
    earlier = [
        (place, event_id)
        for event_id in (as_text(member) for member in await client.zrangebyscore(key, "-inf", order[0]))
        if (place := event_order(event_id)) is not None and place < order
    ]
    due_key = notifier_key("deliveries_due", partition)
    for _, event_id in sorted(earlier):
        due_ms = await client.zscore(due_key, f"{event_id}/{channel}")
        if due_ms is not None:
            return int(due_ms)
        await client.zrem(key, event_id)  # its delivery ended without leaving (a crash between the writes)
    return None
