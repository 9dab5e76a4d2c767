"""Finding every account: one SCAN over the account keys (on every primary of a cluster: redis-py's
scan_iter walks each node). Used by the auditor, the batch jobs and the progress bars. And reading a
partition's stream back from its newest entry, a page at a time, within a bound (the care console's
usage and notices of one account)."""

from __future__ import annotations

from collections.abc import Iterator

from creditd.store.connection import AnySyncRedis
from creditd.store.keys import ACCOUNT_KEY_PATTERN, account_id_of
from creditd.store.replies import as_text

SCAN_BATCH = 500
STREAM_PAGE = 500
MAX_STREAM_SCAN = 20_000
# As redis-py types an XREVRANGE entry: (id, fields), either possibly text or absent.
StreamEntry = tuple[bytes | str | None, dict[bytes | str, bytes | str] | None]


def account_keys(client: AnySyncRedis) -> Iterator[str]:
    # no TYPE filter: an account is a string, or a hash until an older one's next save
    for key in client.scan_iter(match=ACCOUNT_KEY_PATTERN, count=SCAN_BATCH):
        yield key.decode() if isinstance(key, bytes) else key


def account_ids(client: AnySyncRedis) -> Iterator[str]:
    return (account_id_of(key) for key in account_keys(client))


def count_accounts(client: AnySyncRedis) -> int:
    """For progress bars: one SCAN over the account keys."""
    return sum(1 for _ in account_keys(client))


def newest_pages(client: AnySyncRedis, key: str, scan_limit: int = MAX_STREAM_SCAN) -> Iterator[list[StreamEntry]]:
    """The stream's entries newest first, STREAM_PAGE at a time, until it ends or scan_limit entries
    (at most MAX_STREAM_SCAN) were read; the caller stops early by not asking for the next page."""
    upper, scanned = "+", 0
    while scanned < min(scan_limit, MAX_STREAM_SCAN):
        entries = client.xrevrange(key, upper, "-", count=STREAM_PAGE) or []
        scanned += len(entries)
        if entries:
            yield entries
        if len(entries) < STREAM_PAGE:
            return
        upper = f"({as_text(entries[-1][0])}"
