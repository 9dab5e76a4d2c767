"""Accounts: create, read, top up, set status, page the ledger. Each is one Lua function call."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from creditd.clock import Clock
from creditd.logs import caller
from creditd.store.functions import Functions
from creditd.store.keys import Keys
from creditd.store.replies import (
    ACCOUNT_DECODER,
    LEDGER_DECODER,
    TOP_UP_DECODER,
    AccountRecord,
    LedgerEntryRecord,
    TopUpRecord,
)


class BucketSpec(msgspec.Struct, frozen=True):
    bucket_id: str
    unit: int
    amount: int
    rating_groups: Sequence[int] = ()
    expires_at_ms: int = 0
    priority: int = 0
    exhaustion_policy: int = 0


class NewAccount(msgspec.Struct, frozen=True):
    account_id: str
    plan: str
    initial_balance: int = 0
    # None: the plan's default.
    credit_limit: int | None = None
    contact_name: str = ""
    contact_email: str = ""
    contact_phone: str = ""
    # None: the day of the month of creation (28 from the 29th on).
    billing_cycle_day: int | None = None
    buckets: Sequence[BucketSpec] = ()


def create_account_args(new: NewAccount, now_ms: int, actor: str) -> list[str | int]:
    """The ARGV of lua/functions/create_account.lua."""
    args: list[str | int] = [
        now_ms,
        new.account_id,
        new.plan,
        new.initial_balance,
        "" if new.credit_limit is None else new.credit_limit,
        new.contact_name,
        new.contact_email,
        new.contact_phone,
        "" if new.billing_cycle_day is None else new.billing_cycle_day,
        len(new.buckets),
    ]
    for bucket in new.buckets:
        groups = ",".join(str(group) for group in bucket.rating_groups)
        args += (
            bucket.bucket_id,
            bucket.unit,
            bucket.amount,
            groups,
            bucket.expires_at_ms,
            bucket.priority,
            bucket.exhaustion_policy,
        )
    args.append(actor)
    return args


class Accounts:
    def __init__(self, keys: Keys, functions: Functions, clock: Clock) -> None:
        self._keys = keys
        self._functions = functions
        self._clock = clock

    @property
    def clock(self) -> Clock:
        return self._clock

    async def create(self, new: NewAccount) -> AccountRecord:
        args = create_account_args(new, self._clock.now_ms(), caller())
        reply = await self._functions.call(("create_account", self._keys.account_call(new.account_id), args))
        return ACCOUNT_DECODER.decode(reply.body)

    async def get(self, account_id: str) -> AccountRecord:
        keys = (self._keys.account(account_id), self._keys.sessions(account_id))
        reply = await self._functions.call(("get_account", keys, [account_id]))
        return ACCOUNT_DECODER.decode(reply.body)

    async def top_up(self, account_id: str, amount: int, channel: str, idempotency_key: str) -> TopUpRecord:
        keys = self._keys.record_call(account_id, idempotency_key)
        args = [self._clock.now_ms(), account_id, amount, channel, idempotency_key, caller()]
        reply = await self._functions.call(("top_up", keys, args))
        return TOP_UP_DECODER.decode(reply.body)

    async def purchase_bundle(self, account_id: str, bundle_id: str, idempotency_key: str) -> AccountRecord:
        keys = self._keys.record_call(account_id, idempotency_key)
        args = [self._clock.now_ms(), account_id, bundle_id, idempotency_key, caller()]
        reply = await self._functions.call(("purchase_bundle", keys, args))
        return ACCOUNT_DECODER.decode(reply.body)

    async def set_status(self, account_id: str, status: int, reason: str) -> AccountRecord:
        args = [self._clock.now_ms(), account_id, status, reason, caller()]
        reply = await self._functions.call(("set_status", self._keys.account_call(account_id), args))
        return ACCOUNT_DECODER.decode(reply.body)

    async def set_credit_limit(self, account_id: str, credit_limit: int | None) -> AccountRecord:
        """An operator's credit limit, or None: back to the tier's."""
        args = [self._clock.now_ms(), account_id, "" if credit_limit is None else credit_limit, caller()]
        reply = await self._functions.call(("set_credit_limit", self._keys.account_call(account_id), args))
        return ACCOUNT_DECODER.decode(reply.body)

    async def list_ledger(self, account_id: str, limit: int, before_seq: int) -> list[LedgerEntryRecord]:
        keys = (self._keys.account(account_id), self._keys.ledger(account_id))
        reply = await self._functions.call(("list_ledger", keys, [account_id, limit, before_seq]))
        return LEDGER_DECODER.decode(reply.body)
