"""`creditd notify status`: what the notifiers have done and what waits, read from Redis (the
delivery records by state, the deliveries due later, the dead letters, and the events no notifier
has handled yet, with the age of the oldest), and why deliveries fail: the reasons recorded with
the retrying and dead ones, most frequent first."""

from __future__ import annotations

from collections import Counter

import msgspec

from creditd.store.connection import AnySyncRedis
from creditd.store.keys import PREFIX, events_of_partition, notifier_key
from creditd.store.replies import as_text

SCAN_BATCH = 1000
MAX_REASONS = 5
FAILED_STATES = ("retrying", "dead")


class NotifierStatus(msgspec.Struct):
    records_by_state: dict[str, int]
    due_later: int
    dead_letters: int
    unhandled_events: int
    # Unix ms of the oldest event no notifier has handled, or of the earliest deferred or retried
    # delivery; 0: nothing waits.
    oldest_waiting_ms: int
    # '<channel>: <reason>' of the retrying and dead deliveries -> how many, the MAX_REASONS most frequent.
    failure_reasons: dict[str, int] = msgspec.field(default_factory=dict)


def notifier_status(client: AnySyncRedis, partitions: int) -> NotifierStatus:
    states: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for key in client.scan_iter(match=f"{PREFIX}:{{p:*}}:notice:*", count=SCAN_BATCH):
        state, reason = (as_text(value or b"") for value in client.hmget(key, ["state", "reason"]))
        states[state or "?"] += 1
        if state in FAILED_STATES:
            reasons[f"{as_text(key).rsplit('/', 1)[-1]}: {reason}"] += 1
    due = dead = unhandled = 0
    oldest: list[int] = []
    for partition in range(partitions):
        due_key = notifier_key("deliveries_due", partition)
        due += client.zcard(due_key)
        earliest = client.zrange(due_key, 0, 0, withscores=True)
        if earliest:
            oldest.append(int(earliest[0][1]))
        dead += client.llen(notifier_key("dead_letters", partition))
        after = as_text(client.get(notifier_key("notifier_position", partition)) or b"0-0")
        pending = client.xrange(events_of_partition(partition), f"({after}", "+", count=SCAN_BATCH) or []
        unhandled += len(pending)
        if pending:
            oldest.append(int(as_text(pending[0][0] or b"0-0").split("-")[0]))
    return NotifierStatus(
        dict(sorted(states.items())),
        due,
        dead,
        unhandled,
        min(oldest, default=0),
        dict(reasons.most_common(MAX_REASONS)),
    )
