"""Redis key names: the only place they are spelled.

Every key carries its partition's hash tag ({p:<n>}) so that an account, its sessions, its ledger and
its partition's deadline set and event stream share one Redis Cluster slot. The partition is a stable
hash (CRC-32) of the account id, modulo the deployment's fixed partition count.
"""

from __future__ import annotations

import zlib

PREFIX = "cd"


def partition_of(account_id: str, partitions: int) -> int:
    return zlib.crc32(account_id.encode()) % partitions


def partition_tag(partition: int) -> str:
    return f"{PREFIX}:{{p:{partition}}}"


def deadlines_of_partition(partition: int) -> str:
    return f"{partition_tag(partition)}:deadlines"


def events_of_partition(partition: int) -> str:
    return f"{partition_tag(partition)}:events"


def stats_of_partition(partition: int) -> str:
    return f"{partition_tag(partition)}:stats"


def due_of_partition(partition: int) -> str:
    return f"{partition_tag(partition)}:due"


def blacklist_of_partition(partition: int) -> str:
    return f"{partition_tag(partition)}:blacklist"


def sweeper_lease(partition: int) -> str:
    return f"{partition_tag(partition)}:sweeper"


def gateway_position(gateway_id: str) -> str:
    """The last notification id sent to a gateway (not partitioned: it is no account's data)."""
    return f"{PREFIX}:gateway:{gateway_id}:notified"


class Keys:
    """Key builders for one deployment (its partition count).

    Each kind of key has its own word after the tag, and compound parts are joined with '/', which
    no account, gateway or key id may contain: account ids may contain ':', so a key such as
    acct:<id>:ledger would be both account <id>'s ledger and the account '<id>:ledger'.
    """

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def tag(self, account_id: str) -> str:
        return partition_tag(partition_of(account_id, self.partitions))

    def account(self, account_id: str) -> str:
        return f"{self.tag(account_id)}:acct:{account_id}"

    def sessions(self, account_id: str) -> str:
        return f"{self.tag(account_id)}:sessions:{account_id}"

    def ledger(self, account_id: str) -> str:
        return f"{self.tag(account_id)}:ledger:{account_id}"

    def top_up_record(self, account_id: str, idempotency_key: str) -> str:
        return f"{self.tag(account_id)}:topup:{account_id}/{idempotency_key}"

    def session(self, account_id: str, gateway_id: str, session_id: str) -> str:
        return f"{self.tag(account_id)}:session:{gateway_id}/{session_id}"

    def session_call(self, account_id: str, gateway_id: str, session_id: str) -> tuple[str, ...]:
        """The keys of a call on one session (charge, release_orphan), in their KEYS order."""
        return (
            self.account(account_id),
            self.sessions(account_id),
            self.ledger(account_id),
            self.session(account_id, gateway_id, session_id),
            self.deadlines(account_id),
            self.events(account_id),
            self.stats(account_id),
            self.due(account_id),
            self.blacklist(account_id),
        )

    def account_call(self, account_id: str) -> tuple[str, ...]:
        """The keys of a call on one account (create_account, set_status, advance_account)."""
        return (
            self.account(account_id),
            self.sessions(account_id),
            self.ledger(account_id),
            self.events(account_id),
            self.stats(account_id),
            self.due(account_id),
            self.blacklist(account_id),
        )

    def record_call(self, account_id: str, idempotency_key: str) -> tuple[str, ...]:
        """The keys of a call on one account that keeps an idempotency record (top_up,
        purchase_bundle): account_call with the record at KEYS[5]."""
        account_keys = self.account_call(account_id)
        return (*account_keys[:4], self.top_up_record(account_id, idempotency_key), *account_keys[4:])

    def deadlines(self, account_id: str) -> str:
        return deadlines_of_partition(partition_of(account_id, self.partitions))

    def due(self, account_id: str) -> str:
        return due_of_partition(partition_of(account_id, self.partitions))

    def blacklist(self, account_id: str) -> str:
        return blacklist_of_partition(partition_of(account_id, self.partitions))

    def stats(self, account_id: str) -> str:
        return stats_of_partition(partition_of(account_id, self.partitions))

    def events(self, account_id: str) -> str:
        return events_of_partition(partition_of(account_id, self.partitions))


ACCOUNT_KEY_PATTERN = f"{PREFIX}:{{p:*}}:acct:*"


def account_id_of(account_key: str) -> str:
    return account_key.split(":acct:", 1)[1]
