"""The notices an account was sent, for the care console, and a notice sent again at staff's request.

The notifier keeps one delivery record per event and channel (notifier_key('delivery', partition,
'<event id>/<channel>'), creditd/notifier/service.py), kept notice_retention_s, but no per-account
index: the account's partition event stream is read newest first, filtered to the account, up to a
bounded number of stream entries (as core/charge_explanation.py reads usage), and each of its events'
records looked up, with the offer the notifier may have added to it ('<event id>.offer'). Notices
queued without an event (campaigns, sign-in codes) are not found this way.

A resend queues a new delivery of a kept notice, as core/notices.py queues a campaign's: a deferred
record due now under a new id ('<event id>.resend-<n>'), which the notifier delivers with its usual
checks (quiet hours, marketing opt-in, a superseded balance). Sign-in codes are never shown nor resent.
"""

from __future__ import annotations

import secrets
from typing import NamedTuple

import msgspec

from creditd.config.fronts import CHANNELS
from creditd.core.notices import NoticeEvent, queue_notice
from creditd.errors import InvalidArgument, NotFound
from creditd.store.connection import AnySyncRedis
from creditd.store.keys import events_of_partition, notifier_key, partition_of
from creditd.store.replies import as_text
from creditd.store.scan import MAX_STREAM_SCAN, newest_pages

# The notifier's channels, and 'console' (a deployment with none configured logs its notices).
LOOKED_UP = (*CHANNELS, "console")
SECRET_KINDS = frozenset({"sign_in_code"})
NOTICE_ID_LENGTH = 100


class NoticeSent(NamedTuple):
    # The delivery's name: '<notice id>/<channel>'.
    name: str
    notice: NoticeEvent
    channel: str
    # sent, deferred, retrying, dead, suppressed.
    state: str
    reason: str
    attempts: int


def _decoded(name: str, raw: dict[bytes, bytes] | None) -> NoticeSent | None:
    if not raw:
        return None
    fields = {as_text(key): value for key, value in raw.items()}
    notice = msgspec.json.decode(fields["event"], type=NoticeEvent)
    return NoticeSent(
        name,
        notice,
        name.rsplit("/", 1)[1],
        as_text(fields.get("state", b"")),
        as_text(fields.get("reason", b"")),
        int(as_text(fields.get("attempts", b"0")) or 0),
    )


def _records(client: AnySyncRedis, partition: int, names: list[str]) -> list[NoticeSent]:
    """The kept delivery records of `names`, in their order (one pipeline)."""
    if not names:
        return []
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(notifier_key("delivery", partition, idempotency_key=name))
    found = (_decoded(name, raw) for name, raw in zip(names, pipe.execute(), strict=True))
    return [record for record in found if record is not None and record.notice.kind not in SECRET_KINDS]


def recent_notices(
    client: AnySyncRedis, partitions: int, account_id: str, limit: int, scan_limit: int = MAX_STREAM_SCAN
) -> list[NoticeSent]:
    """The account's newest `limit` notice deliveries, newest first, among its partition's newest
    `scan_limit` events."""
    partition = partition_of(account_id, partitions)
    found: list[NoticeSent] = []
    for entries in newest_pages(client, events_of_partition(partition), scan_limit):
        names = [
            f"{notice_id}/{channel}"
            for entry_id, raw in entries
            if as_text((raw or {}).get(b"account_id", b"")) == account_id
            for notice_id in (f"{as_text(entry_id)}.offer", as_text(entry_id))
            for channel in LOOKED_UP
        ]
        found += _records(client, partition, names)
        if len(found) >= limit:
            break
    return found[:limit]


def resend_notice(
    client: AnySyncRedis, partitions: int, account_id: str, name: str, now_ms: int, retention_s: int
) -> str:
    """Queues the kept delivery `name` ('<notice id>/<channel>') of the account again, due now; the new
    delivery's name. NotFound, InvalidArgument or FailedPrecondition naming `notice`, writing nothing."""
    if len(name) > NOTICE_ID_LENGTH or "/" not in name:
        raise InvalidArgument("notice: '<notice id>/<channel>' of one of the card's notices")
    partition = partition_of(account_id, partitions)
    record = next(iter(_records(client, partition, [name])), None)
    if record is None or record.notice.account_id != account_id:  # a sign-in code's is not listed either
        raise NotFound("notice: no such notice of this account is kept")
    notice_id = f"{record.notice.id.split('.resend-')[0]}.resend-{secrets.token_hex(4)}"
    resent = msgspec.structs.replace(record.notice, id=notice_id)
    new_name = f"{notice_id}/{record.channel}"
    pipe = client.pipeline(transaction=False)
    queue_notice(
        pipe,
        notifier_key("delivery", partition, idempotency_key=new_name),
        notifier_key("deliveries_due", partition),
        resent,
        record.channel,
        now_ms,
        "sent again by staff",
        retention_s,
    )
    pipe.execute()
    return new_name
