"""Redis key names: the only place they are spelled (KEY_PATTERNS).

Every key carries its partition's hash tag ({p:<n>}) so that an account, its sessions, its ledger and
its partition's deadline set and event stream share one Redis Cluster slot. The partition is a stable
hash (CRC-32) of the account id, modulo the deployment's fixed partition count.

Each kind of key has its own word after the tag, and compound parts are joined with '/', which no
account, gateway or key id may contain: account ids may contain ':', so a key such as
acct:<id>:ledger would be both account <id>'s ledger and the account '<id>:ledger'.
"""

from __future__ import annotations

import functools
import string
import zlib
from collections.abc import Callable, Sequence

PREFIX = "cd"

# Key name -> pattern; {tag} is the partition's hash tag. The names are the ones the Lua functions
# use for their KEYS (store/calls.py lays them out per function).
KEY_PATTERNS: dict[str, str] = {
    "account": "{tag}:acct:{account_id}",
    "sessions": "{tag}:sessions:{account_id}",
    "ledger": "{tag}:ledger:{account_id}",
    "session": "{tag}:session:{gateway_id}/{session_id}",
    # The record of one idempotent account write (top-up, adjustment, payment, transfer: its answer
    # kept for replay). Spelled topup: from when top-ups were the only such write, and kept: a new
    # spelling would forget the records of a running deployment, and a retried write would apply twice.
    "record": "{tag}:topup:{account_id}/{idempotency_key}",
    "deadlines": "{tag}:deadlines",
    "events": "{tag}:events",
    "usage": "{tag}:usage",
    "stats": "{tag}:stats",
    "due": "{tag}:due",
    "blacklist": "{tag}:blacklist",
    "lease": "{tag}:lease:{role}",
    "sign_in": "{tag}:sign_in:{account_id}",
    "portal_session": "{tag}:portal_session:{account_id}/{idempotency_key}",
    # A voucher is no account's: its own hash tag (the hash of its code) spreads them over a cluster.
    "voucher": PREFIX + ":voucher:{{{idempotency_key}}}",
    # A rate counter of one window (creditd/core/sign_in_limits.py; plain commands), its own hash tag.
    "limit": PREFIX + ":limit:{{{idempotency_key}}}",
    # Voucher redemptions begun and not yet finished (creditd/core/voucher_claims.py; plain commands).
    "voucher_claims": PREFIX + ":voucher_claims",
    "summary": "{tag}:summary:{account_id}",
    "recent": "{tag}:recent:{account_id}",
    # A shared wallet (lua/lib/group.lua): in the partition of its group id's CRC, as an account.
    "group": "{tag}:group:{group_id}",
    "group_ledger": "{tag}:group_ledger:{group_id}",
    "group_record": "{tag}:group_record:{group_id}/{idempotency_key}",
    "group_pending": "{tag}:group_pending",
    # The sweeper's position in the partition's usage stream (plain SET; summarize_usage skips
    # records a summary already holds, so a stale position only repeats work).
    "summarized": "{tag}:summarized",
    # The notifier's (creditd/notifier/service.py), written with plain commands, not functions: its
    # position in the partition's event stream, one delivery record per notice and channel, the
    # deliveries waiting for a retry, the dead letters, and when a kind was last sent to an account.
    # The spellings after the tag are older than these names and kept: deployments hold such keys.
    "notifier_position": "{tag}:notified",
    "delivery": "{tag}:notice:{idempotency_key}",
    "deliveries_due": "{tag}:notices_due",
    "dead_letters": "{tag}:dead_letters",
    "last_notice": "{tag}:noticed:{account_id}/{idempotency_key}",
    # The deliveries of an account on a channel that its later ones wait behind (creditd/notifier/order.py).
    "deliveries_waiting": "{tag}:deliveries_waiting:{account_id}/{idempotency_key}",
    # A payment agent's day book (lua/functions/record_agent_payment.lua), in the partition of the
    # agent id's CRC, as an account.
    "agent_day": "{tag}:agent_day:{agent_id}/{day}",
    # Payments written with plain commands (creditd/payments/): a bank statement's credit and a
    # PromptPay intent each under its own hash tag (the SHA-256 of its reference), and three indexes.
    "bank_entry": PREFIX + ":bank_entry:{{{idempotency_key}}}",
    "bank_unmatched": PREFIX + ":bank_unmatched",
    "payment_intent": PREFIX + ":payment_intent:{{{idempotency_key}}}",
    "payment_intents": PREFIX + ":payment_intents",
    "webhook_outcomes": PREFIX + ":webhook_outcomes",
    # creditd chf's (creditd/chf/notify.py), plain SET with a TTL: the SMF's notifyUri of a session.
    "chf_notify_uri": "{tag}:chf_notify_uri:{session_id}",
}


def partition_of(account_id: str, partitions: int) -> int:
    return zlib.crc32(account_id.encode()) % partitions


def partition_tag(partition: int) -> str:
    return f"{PREFIX}:{{p:{partition}}}"


def _of_partition(name: str, partition: int) -> str:
    return KEY_PATTERNS[name].format(tag=partition_tag(partition))


def deadlines_of_partition(partition: int) -> str:
    return _of_partition("deadlines", partition)


def events_of_partition(partition: int) -> str:
    return _of_partition("events", partition)


def usage_of_partition(partition: int) -> str:
    return _of_partition("usage", partition)


def stats_of_partition(partition: int) -> str:
    return _of_partition("stats", partition)


def due_of_partition(partition: int) -> str:
    return _of_partition("due", partition)


def blacklist_of_partition(partition: int) -> str:
    return _of_partition("blacklist", partition)


def group_pending_of_partition(partition: int) -> str:
    return _of_partition("group_pending", partition)


VOUCHER_CLAIMS_KEY = KEY_PATTERNS["voucher_claims"]


def notifier_key(name: str, partition: int, account_id: str = "", idempotency_key: str = "") -> str:
    """A key of the notifier's in a partition: notifier_position, delivery (idempotency_key:
    '<event id>/<channel>'), deliveries_due, dead_letters, last_notice (idempotency_key: the kind),
    deliveries_waiting (idempotency_key: the channel)."""
    tag = partition_tag(partition)
    return KEY_PATTERNS[name].format(tag=tag, account_id=account_id, idempotency_key=idempotency_key)


def summarized_of_partition(partition: int) -> str:
    return _of_partition("summarized", partition)


def partition_lease(partition: int, role: str) -> str:
    """The lease on a partition of one kind of worker (sweeper, notifier): one process at a time."""
    return KEY_PATTERNS["lease"].format(tag=partition_tag(partition), role=role)


def gateway_position(gateway_id: str) -> str:
    """The last notification id sent to a gateway. Not partitioned and written with a plain SET
    outside the functions: it is no account's data, and a lost or stale value only repeats
    notifications (see docs/design.md, Redis layout)."""
    return f"{PREFIX}:gateway:{gateway_id}:notified"


def payments_key(name: str, idempotency_key: str = "") -> str:
    """A key of the payments' (bank_entry, bank_unmatched, payment_intent, payment_intents,
    webhook_outcomes); idempotency_key: the SHA-256 of the entry's or intent's reference."""
    return KEY_PATTERNS[name].format(idempotency_key=idempotency_key)


# What each field of a pattern is filled with, by Keys.layout's arguments: a group's calls are laid
# out by the group id in the place of an account's; an agent's day book by the agent id, its day in
# the place of a key.
_LAYOUT_FIELDS = {
    "tag": "tag",
    "account_id": "account_id",
    "gateway_id": "gateway_id",
    "session_id": "session_id",
    "idempotency_key": "idempotency_key",
    "group_id": "account_id",
    "agent_id": "account_id",
    "day": "idempotency_key",
}
LayoutBuilder = Callable[[str, tuple[str, ...], str, str, str, str], tuple[str, ...]]


def _fields_of(pattern: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(pattern) if field is not None}


# The keys a partition has once (its deadlines, events, stats...: a pattern of {tag} alone, or a
# constant): spelled once per partition by Keys and handed to the layout builders, not per call.
PARTITION_KEY_NAMES = tuple(name for name, pattern in KEY_PATTERNS.items() if _fields_of(pattern) <= {"tag"})
_PARTITION_KEY_INDEX = {name: index for index, name in enumerate(PARTITION_KEY_NAMES)}


@functools.cache
def layout_builder(names: tuple[str, ...]) -> LayoutBuilder:
    """A function building the keys named from (tag, the partition's own keys, account_id,
    gateway_id, session_id, idempotency_key): one f-string per key of an account, session or record,
    compiled once per layout from KEY_PATTERNS, as collections.namedtuple compiles its class. This
    runs for every request, and a template filled from a mapping cost 2.4 µs a charge (ten keys), the
    f-strings and the tag 0.9."""
    keys = []
    for name in names:
        pattern = KEY_PATTERNS[name]
        assert pattern.isprintable() and '"' not in pattern and "\\" not in pattern, f"key pattern {name!r}"
        if name in _PARTITION_KEY_INDEX:
            keys.append(f"partition_keys[{_PARTITION_KEY_INDEX[name]}]")
            continue
        parts = []
        for literal, field, _, _ in string.Formatter().parse(pattern):
            parts.append(literal.replace("{", "{{").replace("}", "}}"))
            if field is not None:
                parts.append("{" + _LAYOUT_FIELDS[field] + "}")
        keys.append('f"' + "".join(parts) + '"')
    arguments = "tag, partition_keys, account_id, gateway_id, session_id, idempotency_key"
    source = f"lambda {arguments}: ({''.join(key + ', ' for key in keys)})"
    builder: LayoutBuilder = eval(source, {"__builtins__": {}})  # noqa: S307 - built from KEY_PATTERNS only
    return builder


class Keys:
    """Key builders for one deployment (its partition count)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._tags = [partition_tag(partition) for partition in range(partitions)]
        # Each partition's own keys, spelled when the partition is first used (16 384 at most).
        self._partition_keys: list[tuple[str, ...] | None] = [None] * partitions

    def tag(self, account_id: str) -> str:
        return self._tags[partition_of(account_id, self.partitions)]

    def _spell_partition_keys(self, partition: int) -> tuple[str, ...]:
        keys = tuple(KEY_PATTERNS[name].format(tag=self._tags[partition]) for name in PARTITION_KEY_NAMES)
        self._partition_keys[partition] = keys
        return keys

    def layout(
        self,
        names: Sequence[str],
        account_id: str,
        gateway_id: str = "",
        session_id: str = "",
        idempotency_key: str = "",
    ) -> tuple[str, ...]:
        """The keys named, in that order, of one account's (or group's) partition."""
        builder = layout_builder(names if isinstance(names, tuple) else tuple(names))
        return self.build(builder, account_id, gateway_id, session_id, idempotency_key)

    def build(
        self, builder: LayoutBuilder, account_id: str, gateway_id: str, session_id: str, idempotency_key: str
    ) -> tuple[str, ...]:
        """The keys of a layout_builder's layout, of one account's (or group's) partition."""
        partition = partition_of(account_id, self.partitions)
        partition_keys = self._partition_keys[partition] or self._spell_partition_keys(partition)
        return builder(self._tags[partition], partition_keys, account_id, gateway_id, session_id, idempotency_key)

    def account(self, account_id: str) -> str:
        return self.layout(("account",), account_id)[0]

    def sessions(self, account_id: str) -> str:
        return self.layout(("sessions",), account_id)[0]

    def ledger(self, account_id: str) -> str:
        return self.layout(("ledger",), account_id)[0]

    def session(self, account_id: str, gateway_id: str, session_id: str) -> str:
        return self.layout(("session",), account_id, gateway_id, session_id)[0]

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

    def usage(self, account_id: str) -> str:
        return usage_of_partition(partition_of(account_id, self.partitions))


# SCAN MATCH pattern of every account key.
ACCOUNT_KEY_PATTERN = KEY_PATTERNS["account"].format(tag=f"{PREFIX}:{{p:*}}", account_id="*")


def account_id_of(account_key: str) -> str:
    return account_key.split(":acct:", 1)[1]
