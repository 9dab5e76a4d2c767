"""Accounts: create, read, top up, adjust, buy a bundle, set status or credit limit, page the ledger.
Each is one Lua function call."""

from __future__ import annotations

from creditd.clock import Clock
from creditd.logs import caller
from creditd.store.calls import Calls, Command, NewAccount, PreferencesSpec
from creditd.store.functions import Functions
from creditd.store.replies import (
    ACCOUNT_DECODER,
    ADJUST_DECODER,
    LEDGER_DECODER,
    TOP_UP_DECODER,
    AccountRecord,
    AdjustRecord,
    LedgerEntryRecord,
    TopUpRecord,
)


class Accounts:
    def __init__(self, calls: Calls, functions: Functions, clock: Clock) -> None:
        self._calls = calls
        self._functions = functions
        self._clock = clock

    async def _card(self, command: Command) -> AccountRecord:
        return ACCOUNT_DECODER.decode((await self._functions.call(command)).body)

    async def create(self, new: NewAccount) -> AccountRecord:
        return await self._card(self._calls.create_account(new, self._clock.now_ms(), caller()))

    async def get(self, account_id: str) -> AccountRecord:
        return await self._card(self._calls.get_account(account_id, self._clock.now_ms()))

    async def top_up(self, account_id: str, amount: int, channel: str, idempotency_key: str) -> TopUpRecord:
        command = self._calls.top_up(account_id, amount, channel, idempotency_key, self._clock.now_ms(), caller())
        return TOP_UP_DECODER.decode((await self._functions.call(command)).body)

    async def adjust(self, account_id: str, amount: int, reason: str, idempotency_key: str) -> AdjustRecord:
        command = self._calls.adjust(account_id, amount, reason, idempotency_key, self._clock.now_ms(), caller())
        return ADJUST_DECODER.decode((await self._functions.call(command)).body)

    async def borrow(self, account_id: str, offer_id: str, idempotency_key: str) -> TopUpRecord:
        command = self._calls.borrow(account_id, offer_id, idempotency_key, self._clock.now_ms(), caller())
        return TOP_UP_DECODER.decode((await self._functions.call(command)).body)

    async def purchase_bundle(self, account_id: str, bundle_id: str, idempotency_key: str) -> AccountRecord:
        now_ms = self._clock.now_ms()
        return await self._card(self._calls.purchase_bundle(account_id, bundle_id, idempotency_key, now_ms, caller()))

    async def set_status(self, account_id: str, status: int, reason: str) -> AccountRecord:
        return await self._card(self._calls.set_status(account_id, status, reason, self._clock.now_ms(), caller()))

    async def set_credit_limit(self, account_id: str, credit_limit: int | None) -> AccountRecord:
        """An operator's credit limit, or None: back to the tier's."""
        return await self._card(self._calls.set_credit_limit(account_id, credit_limit, self._clock.now_ms(), caller()))

    async def set_plan(self, account_id: str, plan: str) -> AccountRecord:
        """An operator moves the account to another plan of its currency."""
        return await self._card(self._calls.set_plan(account_id, plan, self._clock.now_ms(), caller()))

    async def set_preferences(self, account_id: str, preferences: PreferencesSpec) -> AccountRecord:
        return await self._card(self._calls.set_preferences(account_id, preferences, self._clock.now_ms(), caller()))

    async def list_ledger(self, account_id: str, limit: int, before_seq: int) -> list[LedgerEntryRecord]:
        reply = await self._functions.call(self._calls.list_ledger(account_id, limit, before_seq))
        return LEDGER_DECODER.decode(reply.body)
