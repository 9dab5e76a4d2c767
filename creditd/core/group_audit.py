"""The auditor's part for shared wallets (lua/lib/group.lua): each group's balance is its ledger's sum
and never negative, no member was allocated beyond its cap, and the money the transfers moved adds up
on both sides: what groups allocated (less what was cancelled or came back) equals what members
received (less what they gave back), but for the transfers still pending between the two calls.
Plain reads, like the rest of the auditor."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from creditd.store.account_record import read_account
from creditd.store.connection import AnySyncRedis
from creditd.store.keys import KEY_PATTERNS, PREFIX, Keys
from creditd.store.replies import as_text

GROUP_KEY_PATTERN = KEY_PATTERNS["group"].format(tag=f"{PREFIX}:{{p:*}}", group_id="*")
GROUP_KINDS = ("allocation", "allocation_cancelled", "return")
MEMBER_KINDS = ("group_transfer", "group_return")
LedgerCheck = Callable[[str, dict[str, str], list[str], Counter[str], str], object]


def group_ids(client: AnySyncRedis) -> Iterator[str]:
    for key in client.scan_iter(match=GROUP_KEY_PATTERN, count=500, _type="hash"):
        yield as_text(key).split(":group:", 1)[1]


def _applied_amount(client: AnySyncRedis, keys: Keys, account_id: str, transfer_id: str) -> int | None:
    """What the member's side applied of a transfer (None: not applied yet), from its ledger entry."""
    record = client.get(keys.layout(("record",), account_id, idempotency_key=transfer_id)[0])
    if record is None:
        return None
    seq = int(as_text(record).split("|")[1])
    first_seq = int(read_account(client, keys.account(account_id)).get("ledger_first_seq", "1"))
    entry = client.lindex(keys.ledger(account_id), seq - first_seq)
    return abs(int(as_text(entry).split("|")[3])) if entry is not None else 0


def _pending_in_flight(client: AnySyncRedis, keys: Keys, group: dict[str, str]) -> int:
    """Money between the two sides: allocated and not received yet, or given back and not credited."""
    in_flight = 0
    for field, value in group.items():
        if not field.startswith("pending:"):
            continue
        direction, account_id, amount, *_ = value.split("|")
        applied = _applied_amount(client, keys, account_id, field.removeprefix("pending:"))
        if direction == "1" and applied is None:
            in_flight += int(amount)
        elif direction == "2" and applied is not None:
            in_flight += applied
    return in_flight


def audit_groups(
    client: AnySyncRedis, keys: Keys, check_ledger: LedgerCheck, member_kinds: Counter[str]
) -> tuple[int, int, list[str]]:
    """Returns the number of groups, their total balance and the violations found."""
    group_kinds: Counter[str] = Counter()
    violations: list[str] = []
    count = total = in_flight = 0
    for group_id in group_ids(client):
        group = {as_text(k): as_text(v) for k, v in client.hgetall(keys.layout(("group",), group_id)[0]).items()}
        problems: list[str] = []
        check_ledger(group_id, group, problems, group_kinds, keys.layout(("group_ledger",), group_id)[0])
        balance = int(group["balance"])
        if balance < 0:
            problems.append(f"balance is negative: {balance}")
        for field, value in group.items():
            if field.startswith("member:"):
                cap, _, allocated = (int(part) for part in value.split("|"))
                if cap and allocated > cap:
                    problems.append(f"member {field.removeprefix('member:')} allocated {allocated}, cap {cap}")
        in_flight += _pending_in_flight(client, keys, group)
        count, total = count + 1, total + balance
        violations += [f"group {group_id}: {problem}" for problem in problems]
    moved = sum(group_kinds[kind] for kind in GROUP_KINDS) + sum(member_kinds[kind] for kind in MEMBER_KINDS)
    if not group_kinds["carried"] and not member_kinds["carried"] and moved != -in_flight:
        violations.append(f"groups: transfers moved {moved} net between groups and members, {in_flight} in flight")
    return count, total, violations
