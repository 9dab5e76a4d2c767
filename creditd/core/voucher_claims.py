"""Redeeming a voucher, and finishing the redemptions a crash left half done.

A voucher (its own hash tag) and the account it pays (its partition's) are in different slots, so no
one Lua call can both claim the voucher and credit the account. Redemption is three steps:

1. the claim is written down first in `voucher_claims` (a sorted set, plain ZADD: '<code hash>
   <account id>' by the ms it was made);
2. `claim_voucher` binds the voucher to the account;
3. `top_up`, keyed by the voucher, pays it. It checks the account's status in the same call as the
   payment and answers a replay before the status: a refusal because the account is terminated (or
   gone) means nothing was paid, and `release_voucher` gives the voucher back, so it is not burned.

The entry is removed once the redemption is paid or refused. An entry older than CLAIM_GRACE_S is
a redemption that stopped between the steps (the process died, Redis did not answer): `reconcile`
(each sweeper pass, by the holder of partition 0, and `creditd voucher reconcile`) does the top-up
again under the same key (it pays once, a replay changes nothing) or, when the account cannot be
paid, releases the voucher; a claim older than half of topup_key_retention_s (its top-up's record
may be gone: a second payment could not be told from the first) is left claimed and logged.
"""

from __future__ import annotations

import logging

import msgspec

from creditd.clock import Clock
from creditd.config.settings import Settings
from creditd.core.accounts import Accounts
from creditd.core.vouchers import code_hash, normalized
from creditd.errors import FailedPrecondition, InvalidArgument, NotFound
from creditd.logs import caller
from creditd.store.calls import Calls
from creditd.store.codes import AccountStatus
from creditd.store.connection import AnyRedis
from creditd.store.functions import Functions
from creditd.store.keys import VOUCHER_CLAIMS_KEY
from creditd.store.replies import TopUpRecord, as_text

log = logging.getLogger(__name__)
# A claim this old is no longer in flight: its redemption stopped between the steps.
CLAIM_GRACE_S = 60
# Entries looked at per reconcile pass (the sweeper's), and at most (the command's).
RECONCILE_BATCH = 200
MAX_RECONCILE_BATCH = 100_000


class Claimed(msgspec.Struct, frozen=True):
    amount: int
    replayed: int


class Reconciled(msgspec.Struct):
    completed: int = 0
    released: int = 0
    dropped: int = 0
    left: int = 0


def top_up_key(digest: str) -> str:
    return f"voucher-{digest[:48]}"


class VoucherClaims:
    def __init__(
        self,
        client: AnyRedis,
        calls: Calls,
        functions: Functions,
        accounts: Accounts,
        clock: Clock,
        topup_key_retention_s: int,
    ) -> None:
        self.client, self.calls, self.functions, self.accounts, self.clock = client, calls, functions, accounts, clock
        self.repeat_window_ms = topup_key_retention_s * 500

    async def redeem(self, account_id: str, typed_code: str) -> TopUpRecord:
        digest = code_hash(normalized(typed_code))
        card = await self.accounts.get(account_id)
        if card.status == AccountStatus.TERMINATED:
            raise FailedPrecondition("account_id: the account is terminated; the voucher was not used")
        member = f"{digest} {account_id}"
        await self.client.zadd(VOUCHER_CLAIMS_KEY, {member: self.clock.now_ms()})
        command = self.calls.claim_voucher(digest, account_id, card.currency, self.clock.now_ms(), caller())
        try:
            claimed = msgspec.json.decode((await self.functions.call(command)).body, type=Claimed)
        except (FailedPrecondition, NotFound, InvalidArgument):
            await self.client.zrem(VOUCHER_CLAIMS_KEY, member)
            raise
        return await self._pay(digest, account_id, claimed.amount, member)

    async def _pay(self, digest: str, account_id: str, amount: int, member: str) -> TopUpRecord:
        """The keyed top-up; the voucher released when the account cannot be paid. An outage leaves
        the entry for reconcile."""
        try:
            record = await self.accounts.top_up(account_id, amount, "voucher", top_up_key(digest))
        except (FailedPrecondition, NotFound):
            await self.functions.call(self.calls.release_voucher(digest, account_id, caller()))
            await self.client.zrem(VOUCHER_CLAIMS_KEY, member)
            log.info("voucher claimed by %s released: the account cannot be topped up", account_id)
            raise
        except InvalidArgument:
            await self.client.zrem(VOUCHER_CLAIMS_KEY, member)
            raise
        await self.client.zrem(VOUCHER_CLAIMS_KEY, member)
        return record

    async def reconcile(self, batch: int = RECONCILE_BATCH) -> Reconciled:
        """Finishes the redemptions that stopped between claim and top-up (older than CLAIM_GRACE_S)."""
        now_ms = self.clock.now_ms()
        members = await self.client.zrangebyscore(
            VOUCHER_CLAIMS_KEY, "-inf", now_ms - CLAIM_GRACE_S * 1000, start=0, num=batch
        )
        done = Reconciled()
        for raw in members:
            member = as_text(raw)
            digest, _, account_id = member.partition(" ")
            claimed_by, claimed_at_ms, amount = await self.client.hmget(
                self.calls.voucher_key(digest), ["claimed_by", "claimed_at_ms", "amount"]
            )
            if claimed_by is None or as_text(claimed_by) != account_id:
                done.dropped += 1  # the claim itself never happened (or was refused)
            elif now_ms - int(claimed_at_ms or 0) >= self.repeat_window_ms:
                log.error(
                    "voucher claimed by %s at %s ms not reconciled in time: left claimed", account_id, claimed_at_ms
                )
                done.left += 1
            else:
                try:
                    await self._pay(digest, account_id, int(amount or 0), member)
                    done.completed += 1
                except (FailedPrecondition, NotFound):
                    done.released += 1
                except InvalidArgument as refusal:
                    log.warning("voucher claimed by %s not paid: %s", account_id, refusal)
                    done.left += 1
                continue
            await self.client.zrem(VOUCHER_CLAIMS_KEY, member)
        return done


def voucher_claims(client: AnyRedis, functions: Functions, settings: Settings, clock: Clock) -> VoucherClaims:
    calls = Calls(settings.redis.partitions)
    accounts = Accounts(calls, functions, clock)
    return VoucherClaims(client, calls, functions, accounts, clock, settings.limits.topup_key_retention_s)
