"""Shared wallets (docs/design.md, Shared wallets; lua/lib/group.lua): a group's money moves to a member,
and back, by transfers of three calls: open (the group's slot: grant and debit, or expect a return),
apply (the member's slot, once per transfer id) and settle (the group's slot). A caller stopped between
them leaves the transfer pending; complete() finishes it from what the group recorded, and the sweeper
calls it for every transfer pending longer than limits.group_transfer_completion_s. Every call is
idempotent, so a transfer completed twice moves its money once."""

from __future__ import annotations

import logging
import uuid

from creditd.clock import Clock
from creditd.core.accounts import Accounts
from creditd.errors import FailedPrecondition, InvalidArgument, NotFound
from creditd.logs import caller
from creditd.store.calls import Calls, Command, GroupTransferSpec
from creditd.store.functions import Functions
from creditd.store.replies import (
    GROUP_DECODER,
    GROUP_TOP_UP_DECODER,
    TRANSFER_DECODER,
    GroupRecord,
    GroupTopUpRecord,
)

log = logging.getLogger(__name__)
TO_MEMBER, FROM_MEMBER = 1, 2


def new_transfer_id() -> str:
    return f"gt-{uuid.uuid4().hex[:24]}"


class Groups:
    def __init__(self, calls: Calls, functions: Functions, clock: Clock) -> None:
        self._calls = calls
        self._functions = functions
        self._clock = clock
        self._accounts = Accounts(calls, functions, clock)

    async def _group(self, command: Command) -> GroupRecord:
        return GROUP_DECODER.decode((await self._functions.call(command)).body)

    async def create(self, group_id: str, currency: str, refill_minor: int) -> GroupRecord:
        return await self._group(
            self._calls.create_group(group_id, currency, refill_minor, self._clock.now_ms(), caller())
        )

    async def get(self, group_id: str) -> GroupRecord:
        return await self._group(self._calls.get_group(group_id, self._clock.now_ms()))

    async def top_up(self, group_id: str, amount: int, channel: str, idempotency_key: str) -> GroupTopUpRecord:
        command = self._calls.top_up_group(group_id, amount, channel, idempotency_key, self._clock.now_ms(), caller())
        return GROUP_TOP_UP_DECODER.decode((await self._functions.call(command)).body)

    async def set_member(self, group_id: str, account_id: str, cap_minor: int) -> GroupRecord:
        """Adds a member (or changes its cap); the member's side learns of its group by a transfer of
        nothing, so that it asks for refills when short of money."""
        group = await self.get(group_id)
        card = await self._accounts.get(account_id)
        if card.currency != group.currency:
            raise FailedPrecondition(f"account_id: the account is in {card.currency}, the group in {group.currency}")
        if card.group_id not in ("", group_id):
            raise FailedPrecondition(f"account_id: a member of group {card.group_id}")
        group = await self._group(
            self._calls.set_group_member(group_id, account_id, cap_minor, self._clock.now_ms(), caller())
        )
        join = GroupTransferSpec(
            group_id, account_id, new_transfer_id(), TO_MEMBER, 0, group.currency, group.refill_minor
        )
        await self._functions.call(self._calls.apply_group_transfer(join, self._clock.now_ms(), caller()))
        return group

    async def remove_member(self, group_id: str, account_id: str) -> GroupRecord:
        """What the member holds of the group's money and no session reserves comes back; then it is
        no member."""
        await self._transfer(group_id, account_id, FROM_MEMBER, 0, remove=True)
        return await self.get(group_id)

    async def refill(self, group_id: str, account_id: str, amount: int) -> int:
        """A member short of money asks its group: returns what it got (0: the group's balance or the
        member's cap for the cycle is spent)."""
        return await self._transfer(group_id, account_id, TO_MEMBER, amount)

    async def _transfer(self, group_id: str, account_id: str, direction: int, amount: int, remove: bool = False) -> int:
        spec = GroupTransferSpec(group_id, account_id, new_transfer_id(), direction, amount, remove=remove)
        opened = TRANSFER_DECODER.decode(
            (await self._functions.call(self._calls.open_group_transfer(spec, self._clock.now_ms(), caller()))).body
        )
        if direction == TO_MEMBER and opened.amount == 0:
            return 0
        return await self.complete(group_id, spec.transfer_id)

    async def complete(self, group_id: str, transfer_id: str) -> int:
        """Applies a pending transfer on the member's side (again: once per id) and settles it; a member's
        side that refuses it (a closed account) gets nothing and the money stays with the group. Returns
        what moved; 0 when the transfer is no longer pending."""
        group = await self.get(group_id)
        pending = next((p for p in group.pending if p.transfer_id == transfer_id), None)
        if pending is None:
            return 0
        spec = GroupTransferSpec(
            group_id,
            pending.account_id,
            transfer_id,
            pending.direction,
            pending.amount_minor,
            group.currency,
            group.refill_minor,
            remove=bool(pending.remove),
        )
        try:
            reply = await self._functions.call(self._calls.apply_group_transfer(spec, self._clock.now_ms(), caller()))
        except (NotFound, FailedPrecondition, InvalidArgument) as refusal:  # not a failure to retry
            log.warning("group %s transfer %s refused by %s: %s", group_id, transfer_id, pending.account_id, refusal)
            moved = 0
        else:
            moved = TRANSFER_DECODER.decode(reply.body).amount
        settle = self._calls.settle_group_transfer(group_id, transfer_id, moved, self._clock.now_ms(), caller())
        await self._functions.call(settle)
        return moved
