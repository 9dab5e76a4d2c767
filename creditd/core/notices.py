"""Notices queued for the notifier without an event behind them: sign-in codes (core/self_service.py)
and campaigns (notifier/campaign.py). A queued notice is what the notifier itself writes for a
deferred one: a delivery record in state 'deferred' holding the notice, and its entry in the
partition's due set (docs/design.md: the notifier's keys, written with plain commands); the notifier
delivers it when due, with its usual records, retries and dead letters."""

from __future__ import annotations

from typing import Any

import msgspec

from creditd.config.settings import Settings

DEFERRED = "deferred"


class NoticeEvent(msgspec.Struct, frozen=True):
    """What the notifier tells: from an event (id: the stream id) or queued here (id: made up,
    unique per partition)."""

    id: str
    kind: str
    account_id: str
    time_ms: int
    detail: str = ""
    # The account's balance and available money right after the event (minor units); None for an
    # event written before events carried them, or a notice queued without one.
    balance: int | None = None
    available: int | None = None


def notice_fields(notice: NoticeEvent, state: str, reason: str, attempts: int, due_ms: int) -> dict[str, object]:
    """A delivery record's fields (the key: notifier_key('delivery', partition, '<notice id>/<channel>'))."""
    return {
        "state": state,
        "reason": reason,
        "attempts": attempts,
        "due_ms": due_ms,
        "event": msgspec.json.encode(notice),
    }


def retention_of(kind: str, settings: Settings) -> int:
    """How long a delivery record is kept, in seconds: a sign-in code's (the record holds the code)
    only a little past the code's own lifetime, the others notifications.notice_retention_s."""
    if kind == "sign_in_code":
        return settings.limits.sign_in_code_lifetime_s * 2
    return settings.notifications.notice_retention_s


def queue_notice(
    pipe: Any,
    record_key: str,
    due_key: str,
    notice: NoticeEvent,
    channel: str,
    due_ms: int,
    reason: str,
    retention_s: int,
    state: str = DEFERRED,
    attempts: int = 0,
) -> None:
    """Adds to a pipeline (sync or async: adding is the same) the writes that queue one delivery:
    its record (in `state`, after `attempts`), the record's expiry, and its entry in the due set."""
    pipe.hset(record_key, mapping=notice_fields(notice, state, reason, attempts, due_ms))
    pipe.expire(record_key, retention_s)
    pipe.zadd(due_key, {f"{notice.id}/{channel}": due_ms})
