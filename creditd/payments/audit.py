"""The payments' auditor (`creditd payments audit`): every applied payment has exactly one top-up,
and every payment top-up has its applied payment. Read with plain commands, as core/audit.py reads.

Payments: agents' day-book entries applied or cancelled (top-up 'agent <agent>:<txn>'), paid
PromptPay intents ('promptpay qr:<reference>'), applied or assigned bank credits ('bank
bank:<reference>'); each needs one top-up ledger entry of its amount in its account's ledger. A
top-up ledger entry of those channels needs its payment. A top-up made for a payment whose record
was not written yet (a pay, webhook or import cut off after its top-up) is unfinished, not a
violation: the retry, a redelivery, a re-import or reconcile finishes it. Entries trimmed from a
ledger (older than its retention) are not looked for.
"""

from __future__ import annotations

import msgspec

from creditd.payments.agents import payment_key
from creditd.payments.statements import top_up_key
from creditd.store.account_record import read_account
from creditd.store.connection import AnySyncRedis
from creditd.store.keys import KEY_PATTERNS, Keys, account_id_of, payments_key
from creditd.store.replies import as_text
from creditd.store.scan import account_keys

SCAN_BATCH = 1000
# Ledger reference prefix of each payment channel's top-ups.
CHANNEL_PREFIXES = ("agent ", "promptpay qr:", "bank bank:")


class PaymentsAudit(msgspec.Struct):
    payments: int = 0
    top_ups: int = 0
    unfinished: list[str] = msgspec.field(default_factory=list)
    violations: list[str] = msgspec.field(default_factory=list)


class Expected(msgspec.Struct, frozen=True):
    account_id: str
    amount: int
    applied: bool  # False: the record says it was not (yet) applied
    ledger_seq: int = 0


def _hashes(client: AnySyncRedis, pattern: str) -> list[dict[str, str]]:
    found = []
    for key in client.scan_iter(match=pattern, count=SCAN_BATCH, _type="hash"):
        found.append({as_text(k): as_text(v) for k, v in client.hgetall(key).items()})
    return found


def expected_payments(client: AnySyncRedis) -> dict[str, Expected]:
    """Ledger reference -> what the payment records say should be there."""
    expected: dict[str, Expected] = {}
    pattern = KEY_PATTERNS["agent_day"].format(tag="cd:{p:*}", agent_id="*", day="*")
    for key in client.scan_iter(match=pattern, count=SCAN_BATCH, _type="hash"):
        agent_id = as_text(key).split(":agent_day:", 1)[1].rsplit("/", 1)[0]
        for field, value in client.hgetall(key).items():
            if as_text(field) == "total":
                continue
            state, account_id, amount, _, ledger_seq, _ = as_text(value).split("|")
            applied = state in ("applied", "cancelled")
            reference = f"agent {payment_key(agent_id, as_text(field))}"
            expected[reference] = Expected(account_id, int(amount), applied, int(ledger_seq))
    for intent in _hashes(client, payments_key("payment_intent", "*")):
        reference = f"promptpay qr:{intent['reference']}"
        paid = bool(intent.get("transaction_id"))
        expected[reference] = Expected(intent["account_id"], int(intent["amount_minor"]), paid)
    for entry in _hashes(client, payments_key("bank_entry", "*")):
        if entry.get("state") in ("applied", "assigned", "applying"):
            reference = f"bank {top_up_key(entry['servicer_reference'])}"
            applied = entry["state"] != "applying"
            expected[reference] = Expected(entry["account_id"], int(entry["applied_minor"]), applied)
    return expected


def payment_top_ups(client: AnySyncRedis, keys: Keys) -> tuple[dict[str, list[tuple[str, int]]], dict[str, int]]:
    """Ledger reference -> [(account, amount)] of every payment channel's top-up kept; and each
    account's first kept ledger seq."""
    found: dict[str, list[tuple[str, int]]] = {}
    first_seqs: dict[str, int] = {}
    for account_key in account_keys(client):
        account_id = account_id_of(account_key)
        first_seqs[account_id] = int(read_account(client, account_key).get("ledger_first_seq", "1"))
        for raw in client.lrange(keys.ledger(account_id), 0, -1):
            _, _, kind, amount, _, _, _, reference = as_text(raw).split("|", 7)
            if kind == "topup" and reference.startswith(CHANNEL_PREFIXES):
                found.setdefault(reference, []).append((account_id, int(amount)))
    return found, first_seqs


class ChannelRevenue(msgspec.Struct):
    channel: str
    payments: int = 0
    cancelled: int = 0
    amount_minor: int = 0


def channel_of(kind: str, reference: str) -> str:
    """The payment channel of a ledger entry ('' for none): a top-up by its reference's prefix, an
    agent's cancellation by its adjustment's."""
    if kind == "topup":
        for prefix in CHANNEL_PREFIXES:
            if reference.startswith(prefix):
                return prefix.split(" ", 1)[0]
    if kind == "adjustment" and ":c cancel agent " in reference:
        return "agent"
    return ""


def revenue_by_channel(client: AnySyncRedis, partitions: int, window: tuple[int, int]) -> list[ChannelRevenue]:
    """Money received by payment channel in [from_ms, to_ms), cancellations deducted, from the
    ledgers kept; `creditd report settlement` shows them (beside a provider's settlement)."""
    keys = Keys(partitions)
    totals = {prefix.split(" ", 1)[0]: ChannelRevenue(prefix.split(" ", 1)[0]) for prefix in CHANNEL_PREFIXES}
    for account_key in account_keys(client):
        for raw in client.lrange(keys.ledger(account_id_of(account_key)), 0, -1):
            _, time_ms, kind, amount, _, _, _, reference = as_text(raw).split("|", 7)
            channel = channel_of(kind, reference)
            if not channel or not window[0] <= int(time_ms) < window[1]:
                continue
            row = totals[channel]
            row.amount_minor += int(amount)
            if kind == "topup":
                row.payments += 1
            else:
                row.cancelled += 1
    return list(totals.values())


def audit_payments(client: AnySyncRedis, partitions: int) -> PaymentsAudit:
    report = PaymentsAudit()
    expected = expected_payments(client)
    top_ups, first_seqs = payment_top_ups(client, Keys(partitions))
    report.payments = sum(item.applied for item in expected.values())
    report.top_ups = sum(len(made) for made in top_ups.values())
    for reference, item in sorted(expected.items()):
        made = top_ups.get(reference, [])
        if not item.applied:
            if made:
                report.unfinished.append(f"{reference!r}: topped up, its record not yet written")
            continue
        if not made and item.ledger_seq and item.ledger_seq < first_seqs.get(item.account_id, 1):
            continue  # trimmed from the ledger
        if made != [(item.account_id, item.amount)]:
            report.violations.append(f"{reference!r}: applied {item.amount} to {item.account_id}, top-ups {made}")
    for reference, made in sorted(top_ups.items()):
        if reference not in expected:
            report.violations.append(f"{reference!r}: top-ups {made} without a payment record")
    return report
