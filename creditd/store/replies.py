"""Decoded replies of the Lua functions: msgspec structs over the JSON the functions build by hand.

Field order of the array-like structs is the order lua/ writes them; tests decode every function's
replies through these, so a mismatch fails loudly.
"""

from __future__ import annotations

import msgspec

from creditd.calendar import billing_cycle_of


class GrantRecord(msgspec.Struct, array_like=True, frozen=True):
    rating_group: int
    result: int
    unit: int
    granted: int
    validity_time_s: int
    final_unit_action: int
    redirect_url: str
    throttled: int
    max_bitrate_kbps: int
    charged: int


class AnswerRecord(msgspec.Struct, array_like=True, frozen=True):
    result: int
    account_status: int
    error: str
    grants: list[GrantRecord]


class BucketRecord(msgspec.Struct, array_like=True, frozen=True):
    bucket_id: str
    unit: int
    remaining: int
    reserved: int
    rating_groups: str
    expires_at_ms: int
    priority: int
    exhaustion_policy: int
    amount: int

    def rating_group_list(self) -> list[int]:
        return [int(group) for group in self.rating_groups.split(",")] if self.rating_groups else []


class AccountRecord(msgspec.Struct, frozen=True):
    account_id: str
    plan: str
    currency: str
    status: int
    status_reason: str
    status_since_ms: int
    balance: int
    reserved: int
    credit_limit: int
    tier: str
    created_at_ms: int
    ledger_seq: int
    contact_name: str
    contact_email: str
    contact_phone: str
    open_sessions: int
    credit_limit_override: bool
    billing_cycle_day: int
    # The billing cycle (creditd/calendar.py) overage_spent_minor was counted in.
    overage_cycle: int
    overage_spent_minor: int
    # The plan's monthly data overage spend cap (0: none).
    data_overage_cap_minor: int
    reminders_sent: int
    next_status: int
    next_status_at_ms: int
    buckets: list[BucketRecord]

    def data_overage_spent_minor(self, now_ms: int) -> int:
        """Money spent on data beyond bundles in the billing cycle of now_ms."""
        current = self.overage_cycle == billing_cycle_of(now_ms, self.billing_cycle_day)
        return self.overage_spent_minor if current else 0

    @property
    def available(self) -> int:
        return self.balance + self.credit_limit - self.reserved


class TopUpRecord(msgspec.Struct, frozen=True):
    account: AccountRecord
    replayed: int
    ledger_seq: int


class LedgerEntryRecord(msgspec.Struct, array_like=True, frozen=True):
    seq: int
    time_ms: int
    kind: str
    amount: int
    balance_after: int
    reference: str
    actor: str


ANSWER_DECODER = msgspec.json.Decoder(AnswerRecord)
ACCOUNT_DECODER = msgspec.json.Decoder(AccountRecord)
TOP_UP_DECODER = msgspec.json.Decoder(TopUpRecord)
LEDGER_DECODER = msgspec.json.Decoder(list[LedgerEntryRecord])
