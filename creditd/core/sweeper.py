"""The sweeper: returns what orphan sessions hold (their gateway stopped reporting past deadline plus
grace), in every server process.

Partitions are shared out by leases (Redis function claim_partition): a process sweeps only the
partitions whose lease it holds, renews them each pass, and a crashed process's leases run out so
the others pick its partitions up. Each pass is bounded (max_sessions_per_pass); the release itself
is the function release_orphan, which checks the deadline again atomically.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

import msgspec
from redis.exceptions import RedisError

from creditd import metrics
from creditd.clock import Clock, wait_or_stop
from creditd.errors import CreditdError, raise_for_code
from creditd.settings import SweeperSettings
from creditd.store.codes import Code
from creditd.store.connection import AnyRedis
from creditd.store.functions import decode_reply
from creditd.store.keys import Keys, deadlines_of_partition, due_of_partition, sweeper_lease
from creditd.store.pipeline import AutoPipeline, Command

log = logging.getLogger(__name__)


def new_owner_id() -> str:
    host = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in socket.gethostname())[:32]
    return f"{host}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


class Released(msgspec.Struct):
    released: int
    charged: int


RELEASED_DECODER = msgspec.json.Decoder(Released)


class SweepResult(msgspec.Struct):
    partitions_held: int = 0
    sessions_released: int = 0
    charged_minor: int = 0
    due_accounts: int = 0


class Sweeper:
    def __init__(
        self,
        client: AnyRedis,
        pipeline: AutoPipeline,
        partitions: int,
        settings: SweeperSettings,
        clock: Clock,
        owner: str | None = None,
    ) -> None:
        self._client = client
        self._pipeline = pipeline
        self._partitions = partitions
        self._keys = Keys(partitions)
        self._settings = settings
        self._clock = clock
        self.owner = owner or new_owner_id()

    async def claim(self) -> list[int]:
        lease_ms = int(self._settings.lease_s * 1000)
        commands: list[Command] = [
            ("claim_partition", (sweeper_lease(partition),), (self.owner, lease_ms))
            for partition in range(self._partitions)
        ]
        replies = await self._pipeline.call_many(commands)
        held = []
        for partition, raw in enumerate(replies):
            if isinstance(raw, BaseException):
                raise raw
            reply = decode_reply(raw)
            raise_for_code(reply.code, reply.message)
            if reply.body == b"1":
                held.append(partition)
        return held

    async def _due_sessions(self, partitions: list[int], now_ms: int) -> list[tuple[str, str, str]]:
        horizon_ms = now_ms - self._settings.grace_period_s * 1000
        budget = self._settings.max_sessions_per_pass
        pipe = self._client.pipeline(transaction=False)
        for partition in partitions:
            pipe.zrangebyscore(deadlines_of_partition(partition), "-inf", horizon_ms, start=0, num=budget)
        due: list[tuple[str, str, str]] = []
        for members in await pipe.execute():
            for member in members:
                account_id, gateway_id, session_id = member.decode().split(" ", 2)
                due.append((account_id, gateway_id, session_id))
        return due[:budget]

    async def _advance_accounts(self, partitions: list[int], now_ms: int) -> int:
        """Applies what is due (ladder steps, reminders, bucket expiry) to the accounts of the due
        index; returns how many accounts were looked at."""
        pipe = self._client.pipeline(transaction=False)
        for partition in partitions:
            pipe.zrangebyscore(due_of_partition(partition), "-inf", now_ms, start=0,
                               num=self._settings.max_sessions_per_pass)  # fmt: skip
        accounts = [member.decode() for members in await pipe.execute() for member in members]
        accounts = accounts[: self._settings.max_sessions_per_pass]
        actor = f"sweeper:{self.owner}"
        commands: list[Command] = [
            ("advance_account", self._keys.account_call(account_id), (now_ms, account_id, actor))
            for account_id in accounts
        ]
        for raw in await self._pipeline.call_many(commands):
            if isinstance(raw, BaseException):
                raise raw
            reply = decode_reply(raw)
            if reply.code != Code.USER_UNKNOWN:
                raise_for_code(reply.code, reply.message)
        return len(accounts)

    async def sweep_once(self) -> SweepResult:
        held = await self.claim()
        now_ms = self._clock.now_ms()
        due_accounts = await self._advance_accounts(held, now_ms)
        due = await self._due_sessions(held, now_ms)
        commands: list[Command] = [
            ("release_orphan", self._keys.session_call(*session), (now_ms, *session, f"sweeper:{self.owner}"))
            for session in due
        ]
        result = SweepResult(partitions_held=len(held), due_accounts=due_accounts)
        for session, raw in zip(due, await self._pipeline.call_many(commands), strict=True):
            if isinstance(raw, BaseException):
                raise raw
            reply = decode_reply(raw)
            raise_for_code(reply.code, reply.message)
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
        while not stopping.is_set():
            try:
                result = await self.sweep_once()
            except (CreditdError, RedisError, OSError) as error:
                metrics.SWEEPER_PASSES.labels("failed").inc()
                log.warning("sweeper pass failed (will retry): %s", error)
            else:
                metrics.SWEEPER_PASSES.labels("ok").inc()
                metrics.SWEEPER_RELEASED.inc(result.sessions_released)
                metrics.SWEEPER_CHARGED.inc(result.charged_minor)
                metrics.SWEEPER_PARTITIONS.set(result.partitions_held)
            await wait_or_stop(stopping, self._settings.interval_s)
