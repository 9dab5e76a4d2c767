"""Batch jobs over every account, run by the CLI straight against Redis: credit tier recompute and
the arrears report. Accounts are found by SCAN and processed in pipelined batches of function calls,
so a job is as safe as the functions (each call atomic, a rerun harmless) and never holds the
whole account list in memory."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from itertools import islice

import msgspec

from creditd.errors import CreditdError
from creditd.store.calls import Calls
from creditd.store.codes import SUSPENDED
from creditd.store.connection import AnySyncRedis
from creditd.store.functions import call_all_sync
from creditd.store.replies import ACCOUNT_DECODER, TIER_RESULT_DECODER, AccountRecord
from creditd.store.scan import account_ids

DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 10_000
DAY_MS = 86_400_000


def _batches(items: Iterator[str], size: int) -> Iterator[list[str]]:
    while batch := list(islice(items, size)):
        yield batch


class TierSummary(msgspec.Struct):
    accounts: int = 0
    changed: int = 0
    window_trimmed: int = 0
    failed: int = 0
    by_tier: dict[str, int] = msgspec.field(default_factory=dict)


def recompute_tiers(
    client: AnySyncRedis,
    calls: Calls,
    now_ms: int,
    actor: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], object] = lambda _: None,
) -> TierSummary:
    """Runs recompute_tier for every account, batch by batch; returns what it did."""
    assert 1 <= batch_size <= MAX_BATCH_SIZE
    summary, tiers = TierSummary(), Counter[str]()
    for batch in _batches(account_ids(client), batch_size):
        commands = [calls.recompute_tier(account_id, now_ms, actor) for account_id in batch]
        for outcome in call_all_sync(client, commands):
            summary.accounts += 1
            if isinstance(outcome, CreditdError):
                summary.failed += 1
                continue
            result = TIER_RESULT_DECODER.decode(outcome.body)
            tiers[result.tier or "(no tiers)"] += 1
            summary.changed += result.changed
            summary.window_trimmed += result.window_trimmed
        progress(len(batch))
    summary.by_tier = dict(sorted(tiers.items()))
    return summary


class ArrearsRow(msgspec.Struct, frozen=True):
    account_id: str
    status: int
    status_reason: str
    balance: int
    # What the subscriber owes: -balance when below zero, else 0.
    debt: int
    days_in_state: int
    next_status: int
    next_status_at_ms: int
    dealer: str = ""


def _arrears_row(card: AccountRecord, now_ms: int) -> ArrearsRow | None:
    if card.balance >= 0 and card.status not in SUSPENDED:
        return None
    return ArrearsRow(
        account_id=card.account_id,
        status=card.status,
        status_reason=card.status_reason,
        balance=card.balance,
        debt=max(0, -card.balance),
        days_in_state=max(0, now_ms - card.status_since_ms) // DAY_MS,
        next_status=card.next_status,
        next_status_at_ms=card.next_status_at_ms,
        dealer=card.dealer,
    )


def arrears(
    client: AnySyncRedis,
    calls: Calls,
    now_ms: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], object] = lambda _: None,
) -> list[ArrearsRow]:
    """Accounts in debt or suspended, the largest debt first (the subscriber cards, read-only)."""
    rows = [row for card in cards(client, calls, now_ms, batch_size, progress) if (row := _arrears_row(card, now_ms))]
    return sorted(rows, key=lambda row: (-row.debt, row.account_id))


def cards(
    client: AnySyncRedis,
    calls: Calls,
    now_ms: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], object] = lambda _: None,
) -> Iterator[AccountRecord]:
    """Every account's card, read in pipelined batches (read-only)."""
    assert 1 <= batch_size <= MAX_BATCH_SIZE
    for batch in _batches(account_ids(client), batch_size):
        commands = [calls.get_account(account_id, now_ms) for account_id in batch]
        for outcome in call_all_sync(client, commands):
            if not isinstance(outcome, CreditdError):  # else deleted between SCAN and the read
                yield ACCOUNT_DECODER.decode(outcome.body)
        progress(len(batch))


class LoanRow(msgspec.Struct, frozen=True):
    account_id: str
    status: int
    tier: str
    balance: int
    # Loans and fees not yet recovered from top-ups.
    owed: int


def loans(
    client: AnySyncRedis,
    calls: Calls,
    now_ms: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], object] = lambda _: None,
) -> list[LoanRow]:
    """Accounts owing for emergency credit (Borrow), the largest sum owed first."""
    rows = [
        LoanRow(card.account_id, card.status, card.tier, card.balance, card.loan_outstanding)
        for card in cards(client, calls, now_ms, batch_size, progress)
        if card.loan_outstanding
    ]
    return sorted(rows, key=lambda row: (-row.owed, row.account_id))
