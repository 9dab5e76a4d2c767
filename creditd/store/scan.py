"""Finding every account: one SCAN over the account hashes (on every primary of a cluster: redis-py's
scan_iter walks each node). Used by the auditor, the batch jobs and the progress bars."""

from __future__ import annotations

from collections.abc import Iterator

from creditd.store.connection import AnySyncRedis
from creditd.store.keys import ACCOUNT_KEY_PATTERN, account_id_of

SCAN_BATCH = 500


def account_keys(client: AnySyncRedis) -> Iterator[str]:
    for key in client.scan_iter(match=ACCOUNT_KEY_PATTERN, count=SCAN_BATCH, _type="hash"):
        yield key.decode() if isinstance(key, bytes) else key


def account_ids(client: AnySyncRedis) -> Iterator[str]:
    return (account_id_of(key) for key in account_keys(client))


def count_accounts(client: AnySyncRedis) -> int:
    """For progress bars: one SCAN over the account keys."""
    return sum(1 for _ in account_keys(client))
