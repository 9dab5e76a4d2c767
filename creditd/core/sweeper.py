"""The sweeper: returns what orphan sessions hold (their gateway stopped reporting past deadline plus
grace), applies what time made due (advance_account), and moves shared wallets' money: refills for
members short of it and transfers left half done (core/groups.py); in every server process.

Partitions are shared out by leases (Redis function claim_partition): a process sweeps only the
partitions whose lease it holds, and a crashed process's leases run out so the others pick its
partitions up. A lease is renewed when a third of it has passed, not on every pass, and a partition
another process held is asked for again as often: the claims cost Redis a call per partition each
time (256 a second per process when every pass claimed), and holding a lease is only about sharing
the work out, not about safety, since every change a pass makes is checked again atomically in its
function. So a crashed process' partitions are taken over within lease_s plus a third of it. Each
pass is bounded (max_sessions_per_pass); the release itself is the function release_orphan, which
checks the deadline again atomically.

A pass is spread over its interval in steps of partitions_per_step partitions, each step with its
share of the pass's budget: a pass over every partition at once (256 claims, two pipelines of 256
range reads) held the event loop for milliseconds each second, and the gateways' requests that came
in meanwhile waited, which showed in their p99 at half load. Nor too small a step: each costs a
wake-up, a write and a read whatever it reads (16 partitions a step cost an idle process twice the
CPU of 64). A step's index reads are packed by the pipeline's RangeReadPacker (store/resp.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Sequence

import msgspec
from redis.exceptions import RedisError

from creditd import metrics
from creditd.clock import Clock, wait_or_stop
from creditd.config.settings import SweeperSettings
from creditd.core.groups import Groups
from creditd.core.voucher_claims import VoucherClaims
from creditd.errors import CreditdError, NotFound
from creditd.store.calls import Calls
from creditd.store.functions import Functions
from creditd.store.keys import deadlines_of_partition, due_of_partition, group_pending_of_partition
from creditd.store.replies import ADVANCE_DECODER, RELEASED_DECODER, Reply

log = logging.getLogger(__name__)


def new_owner_id() -> str:
    host = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in socket.gethostname())[:32]
    return f"{host}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


class SweepResult(msgspec.Struct):
    partitions_held: int = 0
    sessions_released: int = 0
    charged_minor: int = 0
    due_accounts: int = 0
    group_transfers: int = 0
    vouchers_reconciled: int = 0


# A session past deadline plus grace: (account_id, gateway_id, session_id).
Orphan = tuple[str, str, str]
# What a step finds to do: due accounts, orphan sessions, group transfers (group_id, transfer_id).
Due = tuple[list[str], list[Orphan], list[tuple[str, str]]]


def _orphan(member: bytes) -> Orphan:
    """A deadline-set member '<account_id> <gateway_id> <session_id>' (no id holds a space)."""
    account_id, gateway_id, session_id = member.decode().split(" ", 2)
    return account_id, gateway_id, session_id


def _replies(outcomes: list[Reply | CreditdError]) -> list[Reply]:
    """The replies of a pass's calls; the first failure fails the pass (the next one retries)."""
    replies = []
    for outcome in outcomes:
        if isinstance(outcome, CreditdError):
            raise outcome
        replies.append(outcome)
    return replies


class Sweeper:
    def __init__(
        self,
        functions: Functions,
        partitions: int,
        settings: SweeperSettings,
        clock: Clock,
        owner: str | None = None,
        group_transfer_completion_s: int = 30,
        vouchers: VoucherClaims | None = None,
    ) -> None:
        self._functions = functions
        self._partitions = partitions
        self._calls = Calls(partitions)
        self._settings = settings
        self._clock = clock
        self.owner = owner or new_owner_id()
        self._groups = Groups(self._calls, functions, clock)
        self._completion_ms = group_transfer_completion_s * 1000
        self._vouchers = vouchers
        # partition -> (time.monotonic() when it was last claimed, held then); leases expire on
        # Redis' clock, which the test clock does not move.
        self._claimed: dict[int, tuple[float, bool]] = {}
        self._index_keys = [
            (due_of_partition(partition), deadlines_of_partition(partition), group_pending_of_partition(partition))
            for partition in range(partitions)
        ]

    async def claim(self, partitions: Sequence[int] | None = None) -> list[int]:
        """Claims or renews the lease of each partition (all of them by default); returns those held."""
        lease_ms = int(self._settings.lease_s * 1000)
        wanted = range(self._partitions) if partitions is None else partitions
        commands = [self._calls.claim_partition(partition, self.owner, lease_ms) for partition in wanted]
        sent_at = time.monotonic()
        replies = _replies(await self._functions.call_many(commands))
        held = [reply.body == b"1" for reply in replies]
        self._claimed.update((partition, (sent_at, is_held)) for partition, is_held in zip(wanted, held, strict=True))
        return [partition for partition, is_held in zip(wanted, held, strict=True) if is_held]

    async def held(self, partitions: Sequence[int]) -> list[int]:
        """The partitions of these whose lease this process holds: claimed again where a third of the
        lease has passed since the last claim (renewed if held, asked for if another's), else as the
        last claim found them, which was within a third of the lease, so the lease still runs."""
        renew_after_s = self._settings.lease_s / 3
        now = time.monotonic()
        stale = [p for p in partitions if now - self._claimed.get(p, (-math.inf, False))[0] >= renew_after_s]
        claimed = set(await self.claim(stale)) if stale else set()
        return [p for p in partitions if p in claimed or (p not in stale and self._claimed[p][1])]

    async def _due(self, partitions: list[int], now_ms: int, budget: int) -> Due:
        """The accounts of the partitions' due indexes that are due, their sessions past deadline plus
        grace and their group transfers left half done, at most `budget` of each, in one round trip."""
        if not partitions:
            return [], [], []
        horizon_ms = now_ms - self._settings.grace_period_s * 1000
        stale_ms = now_ms - self._completion_ms
        reads = [
            (self._index_keys[partition][index], until_ms)
            for index, until_ms in enumerate((now_ms, horizon_ms, stale_ms))
            for partition in partitions
        ]
        replies = await self._functions.pipeline.read_ranges(reads, budget)
        count = len(partitions)
        accounts = [member.decode() for members in replies[:count] for member in members]
        sessions = [_orphan(member) for members in replies[count : 2 * count] for member in members]
        transfers = [tuple(member.decode().split(" ", 1)) for members in replies[2 * count :] for member in members]
        return accounts[:budget], sessions[:budget], transfers[:budget]

    async def _advance_accounts(self, accounts: list[str], now_ms: int) -> list[tuple[str, str, int]]:
        """Applies what is due (ladder steps, reminders, bucket expiry) to the accounts; returns the
        refills group members asked for: (account_id, group_id, amount)."""
        actor = f"sweeper:{self.owner}"
        commands = [self._calls.advance_account(account_id, now_ms, actor) for account_id in accounts]
        # An account deleted since it was indexed (unknown) is the one refusal expected here.
        outcomes = await self._functions.call_many(commands)
        refills = []
        for account_id, outcome in zip(accounts, outcomes, strict=True):
            if isinstance(outcome, NotFound):
                continue
            (reply,) = _replies([outcome])
            wanted = ADVANCE_DECODER.decode(reply.body).group_refill
            if wanted is not None:
                refills.append((account_id, wanted.group_id, wanted.amount))
        return refills

    async def _move_group_money(self, refills: list[tuple[str, str, int]], transfers: list[tuple[str, str]]) -> int:
        """Refills for members short of money, and the group transfers left half done; a group call that
        fails is logged (the member asks again after group_refill_retry_s; the transfer stays pending)."""
        moved = 0
        for account_id, group_id, amount in refills:
            try:
                moved += bool(await self._groups.refill(group_id, account_id, amount))
            except CreditdError as error:
                log.warning("refill of %s from group %s failed: %s", account_id, group_id, error)
        for group_id, transfer_id in transfers:
            try:
                await self._groups.complete(group_id, transfer_id)
                moved += 1
            except CreditdError as error:
                log.warning("group %s transfer %s not completed: %s", group_id, transfer_id, error)
        return moved

    async def sweep_once(self, partitions: Sequence[int] | None = None, budget: int | None = None) -> SweepResult:
        """One pass over the partitions (all of them by default), at most `budget` accounts advanced
        and `budget` sessions released (default max_sessions_per_pass)."""
        budget = self._settings.max_sessions_per_pass if budget is None else budget
        held = await self.held(range(self._partitions) if partitions is None else partitions)
        now_ms = self._clock.now_ms()
        accounts, due, transfers = await self._due(held, now_ms, budget)
        refills = await self._advance_accounts(accounts, now_ms)
        actor = f"sweeper:{self.owner}"
        commands = [self._calls.release_orphan(*session, now_ms, actor) for session in due]
        result = SweepResult(partitions_held=len(held), due_accounts=len(accounts))
        result.group_transfers = await self._move_group_money(refills, transfers)
        if self._vouchers is not None and 0 in held:  # one list for all: its holder reconciles it
            done = await self._vouchers.reconcile()
            result.vouchers_reconciled = done.completed + done.released
        for session, reply in zip(due, _replies(await self._functions.call_many(commands)), strict=True):
            released = RELEASED_DECODER.decode(reply.body)
            if released.released:
                log.info(
                    "orphan session released: gateway %s session %s account %s charged %d",
                    session[1],
                    session[2],
                    session[0],
                    released.charged,
                )
            result.sessions_released += released.released
            result.charged_minor += released.charged
        return result

    async def run(self, stopping: asyncio.Event) -> None:
        step = self._settings.partitions_per_step
        steps = math.ceil(self._partitions / step)
        budget = math.ceil(self._settings.max_sessions_per_pass / steps)
        pause_s = self._settings.interval_s / steps
        while not stopping.is_set():
            passed = SweepResult()
            failed = False
            for start in range(0, self._partitions, step):
                try:
                    result = await self.sweep_once(range(start, min(start + step, self._partitions)), budget)
                except (CreditdError, RedisError, OSError) as error:
                    failed = True
                    log.warning("sweeper step failed (the next pass retries it): %s", error)
                else:
                    passed.partitions_held += result.partitions_held
                    passed.sessions_released += result.sessions_released
                    passed.charged_minor += result.charged_minor
                await wait_or_stop(stopping, pause_s)
                if stopping.is_set():
                    return
            self._count(passed, failed)

    @staticmethod
    def _count(passed: SweepResult, failed: bool) -> None:
        metrics.SWEEPER_PASSES.labels("failed" if failed else "ok").inc()
        metrics.SWEEPER_RELEASED.inc(passed.sessions_released)
        metrics.SWEEPER_CHARGED.inc(passed.charged_minor)
        if not failed:
            metrics.SWEEPER_PARTITIONS.set(passed.partitions_held)
