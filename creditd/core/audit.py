"""The auditor: checks the invariants of docs/design.md against what is in Redis.

Written once and used by the tests after every scenario (and later by `creditd audit`). It reads
with plain commands, never through the functions, so it does not share their bugs.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping

import msgspec

from creditd.core.group_audit import audit_groups
from creditd.core.usage import usage_fields
from creditd.store.account_record import read_account
from creditd.store.codes import Unit
from creditd.store.connection import AnySyncRedis
from creditd.store.keys import Keys, account_id_of, deadlines_of_partition, partition_of, usage_of_partition
from creditd.store.replies import as_text
from creditd.store.scan import account_keys
from creditd.store.session_codec import StoredReservation, read_session

ACTIVE = 1


class AuditReport(msgspec.Struct):
    accounts: int = 0
    open_sessions: int = 0
    total_balance: int = 0
    # Of the accounts whose opening entry is not trimmed yet.
    total_initial_balance: int = 0
    total_reserved: int = 0
    # Shared wallets (core/group_audit.py).
    groups: int = 0
    total_group_balance: int = 0
    amounts_by_kind: dict[str, int] = msgspec.field(default_factory=dict)
    violations: list[str] = msgspec.field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.violations


def _decode(mapping: Mapping[bytes, bytes] | Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {as_text(key): as_text(value) for key, value in mapping.items()}


def _reservation_problems(member: str, reservation: StoredReservation) -> list[str]:
    """A grant's tariff time change lies within its validity (docs/design.md, Rating)."""
    change_ms, deadline_ms = reservation.change_ms, reservation.deadline_ms
    if change_ms and not change_ms < deadline_ms:
        field = f"reservation:{reservation.rating_group}"
        return [f"session {member!r} {field}: tariff change at {change_ms} is not before its deadline {deadline_ms}"]
    return []


USAGE_PAGE = 10_000


class PartitionUsage(msgspec.Struct):
    """What a partition's usage records charged, per account and ledger reference."""

    charged: dict[str, dict[str, int]]
    # Records were trimmed (retention, length): a charge may have lost its records.
    trimmed: bool


class Auditor:
    def __init__(self, client: AnySyncRedis, partitions: int) -> None:
        self.client = client
        self.keys = Keys(partitions)
        self._usage: dict[int, PartitionUsage] = {}

    def _partition_usage(self, partition: int) -> PartitionUsage:
        if partition not in self._usage:
            key = usage_of_partition(partition)
            charged: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            start = "-"
            while entries := self.client.xrange(key, start, "+", count=USAGE_PAGE):
                for _, raw in entries:
                    fields = usage_fields(_decode(raw or {}))
                    # bonus money paid part of it: the ledger debited the rest (lua/lib/bonus.lua)
                    main = int(fields["charged"]) - int(fields.get("bonus", 0))
                    charged[fields["account_id"]][fields["reference"]] += main
                start = f"({as_text(entries[-1][0])}"
            trimmed = bool(self.client.exists(key)) and as_text(
                self.client.xinfo_stream(key).get("max-deleted-entry-id", b"0-0")
            ) not in ("0-0", "")
            self._usage[partition] = PartitionUsage(charged, trimmed)
        return self._usage[partition]

    def _check_usage(
        self, account_id: str, account: dict[str, str], ledger_charges: dict[str, int], problems: list[str]
    ) -> None:
        """Usage records and charge ledger entries agree, reference by reference, as far as both are
        kept (docs/design.md, invariant 9)."""
        usage = self._partition_usage(partition_of(account_id, self.keys.partitions))
        records = usage.charged.get(account_id, {})
        if not usage.trimmed:
            for reference, amount in ledger_charges.items():
                charged = records.get(reference)
                if charged != -amount:
                    problems.append(f"charge {reference!r} of {-amount}: its usage records charge {charged}")
        if int(account.get("ledger_first_seq", 1)) == 1:
            for reference, charged in records.items():
                if charged and reference not in ledger_charges:
                    problems.append(f"usage records charge {charged} for {reference!r}, which no ledger entry charged")

    def run(
        self, now_ms: int | None = None, grace_period_s: int = 0, progress: Callable[[int], None] | None = None
    ) -> AuditReport:
        """With now_ms, also checks that no session is past its deadline plus the grace period (the
        state a sweeper pass must leave). progress, if given, is told how many accounts were checked."""
        report = AuditReport()
        if now_ms is not None:
            self._check_overdue(now_ms - grace_period_s * 1000, report)
        kinds: Counter[str] = Counter()
        for account_key in account_keys(self.client):
            self._audit_account(account_id_of(account_key), report, kinds)
            if progress is not None:
                progress(1)
        report.amounts_by_kind = dict(kinds)
        ledger_total = sum(kinds.values())
        if ledger_total != report.total_balance:
            report.violations.append(f"money: ledger amounts sum to {ledger_total}, balances to {report.total_balance}")
        if kinds.get("opening", 0) != report.total_initial_balance:
            report.violations.append("money: opening entries differ from the initial balances")
        report.groups, report.total_group_balance, violations = audit_groups(
            self.client, self.keys, self._check_ledger, kinds
        )
        report.violations += violations
        return report

    def _check_overdue(self, horizon_ms: int, report: AuditReport) -> None:
        for partition in range(self.keys.partitions):
            overdue = self.client.zrangebyscore(deadlines_of_partition(partition), "-inf", f"({horizon_ms}")
            report.violations += [f"session {as_text(member)!r} is past its deadline plus grace" for member in overdue]

    def _audit_account(self, account_id: str, report: AuditReport, kinds: Counter[str]) -> None:
        account = read_account(self.client, self.keys.account(account_id))
        problems: list[str] = []
        balance, reserved = int(account["balance"]), int(account["reserved"])
        credit_limit, status = int(account["credit_limit"]), int(account["status"])
        ledger_charges = self._check_ledger(account_id, account, problems, kinds)
        self._check_usage(account_id, account, ledger_charges, problems)
        money_held, bucket_units_held = self._check_sessions(account_id, problems, report)
        if reserved != money_held:
            problems.append(f"reserved {reserved} but open sessions hold {money_held}")
        for field, value in account.items():
            if not field.startswith("bucket:"):
                continue
            bucket_id = field.removeprefix("bucket:")
            unit, remaining, bucket_reserved, _, _, _, amount, *_ = value.split("|")
            held = bucket_units_held.get(bucket_id, 0)
            if int(bucket_reserved) != held:
                problems.append(f"bucket {bucket_id} reserves {bucket_reserved}, sessions hold {held}")
            if int(bucket_reserved) > int(remaining) or int(remaining) < 0:
                problems.append(f"bucket {bucket_id} reserves {bucket_reserved} of {remaining}")
            if int(unit) == Unit.MONEY and int(remaining) > int(amount):
                problems.append(f"bonus bucket {bucket_id} holds {remaining}, more than it was granted ({amount})")
        if reserved < 0:
            problems.append(f"reserved is negative: {reserved}")
        if balance + credit_limit <= 0 and status == ACTIVE:
            problems.append(f"ACTIVE with balance {balance} and credit limit {credit_limit}")
        report.accounts += 1
        report.total_balance += balance
        if int(account.get("ledger_first_seq", 1)) == 1:  # its opening entry is still there to compare
            report.total_initial_balance += int(account["initial_balance"])
        report.total_reserved += reserved
        report.violations += [f"account {account_id}: {problem}" for problem in problems]

    def _check_ledger(
        self,
        account_id: str,
        account: dict[str, str],
        problems: list[str],
        kinds: Counter[str],
        ledger_key: str | None = None,
    ) -> dict[str, int]:
        """Checks the chain and sums (of an account's ledger, or the one at ledger_key: a group's);
        returns the kept charge entries' amounts by reference."""
        charges: dict[str, int] = defaultdict(int)
        carried = int(account.get("ledger_carried", 0))
        first_seq = int(account.get("ledger_first_seq", 1))
        running, expected_seq = carried, first_seq - 1
        references: Counter[tuple[str, str]] = Counter()
        previous_hash = account.get("ledger_trimmed_hash", "")
        for raw in self.client.lrange(ledger_key or self.keys.ledger(account_id), 0, -1):
            seq_text, time_ms, kind, amount_text, balance_after, actor, entry_hash, reference = as_text(raw).split(
                "|", 7
            )
            fields = {"kind": kind, "amount": amount_text, "balance_after": balance_after, "reference": reference}
            head = "|".join((seq_text, time_ms, kind, amount_text, balance_after, actor))
            expected_hash = hashlib.sha1(f"{previous_hash}\n{head}|{reference}".encode()).hexdigest()
            if entry_hash != expected_hash:
                problems.append(f"ledger seq {seq_text}: hash chain broken (entry altered, removed or inserted)")
            previous_hash = entry_hash
            expected_seq += 1
            seq = int(seq_text)
            if seq != expected_seq:
                problems.append(f"ledger seq {seq} where {expected_seq} was expected")
            amount = int(fields["amount"])
            running += amount
            kinds[fields["kind"]] += amount
            if int(fields["balance_after"]) != running:
                problems.append(f"ledger seq {seq}: balance_after {fields['balance_after']}, running sum {running}")
            if fields["kind"] in ("charge", "topup"):
                references[(fields["kind"], fields["reference"])] += 1
            if kind == "charge":
                charges[reference] += amount
        if previous_hash != account.get("ledger_hash", ""):
            problems.append("ledger: the newest entry's hash differs from the account's ledger_hash")
        if running != int(account["balance"]):
            problems.append(f"balance {account['balance']} but the ledger sums to {running}")
        if first_seq == 1 and carried != 0:
            problems.append(f"nothing trimmed but {carried} carried")
        kinds["carried"] += carried  # trimmed entries, kind unknown: money conservation counts them whole
        if expected_seq != int(account["ledger_seq"]):
            problems.append(f"ledger_seq {account['ledger_seq']} but the ledger has {expected_seq} entries")
        for (kind, reference), count in references.items():
            if count > 1:
                problems.append(f"{kind} {reference!r} applied {count} times")
        return charges

    def _check_sessions(self, account_id: str, problems: list[str], report: AuditReport) -> tuple[int, dict[str, int]]:
        money_held = 0
        bucket_units_held: dict[str, int] = defaultdict(int)
        deadlines_key = self.keys.deadlines(account_id)
        for member in self.client.smembers(self.keys.sessions(account_id)):
            gateway_id, session_id = as_text(member).split(" ", 1)
            session = read_session(self.client, self.keys.session(account_id, gateway_id, session_id))
            report.open_sessions += 1
            if session is None or session.state != "open" or session.account_id != account_id:
                problems.append(f"session {member!r} listed as open but is {session and session.state!r}")
                continue
            if self.client.zscore(deadlines_key, f"{account_id} {as_text(member)}") is None:
                problems.append(f"session {member!r} has no deadline")
            for reservation in session.reservations:
                money_held += reservation.money
                if reservation.bucket_id:
                    bucket_units_held[reservation.bucket_id] += reservation.bucket_units
                problems += _reservation_problems(as_text(member), reservation)
        return money_held, bucket_units_held
