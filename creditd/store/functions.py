"""Calling the Lua functions: a command from store/calls.py through the auto-pipeline, its reply
decoded and its code checked in one place (store/replies.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from creditd.errors import CreditdError
from creditd.store.calls import READ_ONLY, SESSION_GUARDED, Command, fcall, with_session
from creditd.store.connection import AnyRedis, AnySyncRedis
from creditd.store.pipeline import AutoPipeline
from creditd.store.replies import Reply, checked_reply


def checked(raw: Any) -> Reply:
    """A raw reply as Functions.call returns it: the reply, or the creditd error its code stands for
    raised."""
    outcome = checked_reply(raw)
    if isinstance(outcome, CreditdError):
        raise outcome
    return outcome


class Functions:
    def __init__(self, pipeline: AutoPipeline) -> None:
        self.pipeline = pipeline

    async def call(self, command: Command) -> Reply:
        """The function's reply; raises the creditd error its code stands for, or Unavailable."""
        return checked(await self.send(command))

    def send(self, command: Command) -> asyncio.Future[Any]:
        """The function's raw reply, to await and hand to `checked`: call's two halves, for the
        charge, which awaits it in its own coroutine (one layer less on every request)."""
        return self.pipeline.call(*command)

    async def call_many(self, commands: Sequence[Command]) -> list[Reply | CreditdError]:
        """Every command in this event-loop turn (one pipeline when they fit); each outcome in order,
        a reply or the error of that call alone."""
        return [checked_reply(raw) for raw in await self.pipeline.call_many(commands)]


def _queue_calls(pipe: Any, commands: Sequence[Command]) -> Any:
    """Adds the calls to a pipeline (sync or asyncio: adding is the same); read-only functions go as
    FCALL_RO."""
    for command in commands:
        pipe.execute_command("FCALL_RO" if command[0] in READ_ONLY else "FCALL", *fcall(command))
    return pipe


async def call_all(client: AnyRedis, commands: Sequence[Command]) -> list[Reply | CreditdError]:
    """One pipelined round trip of function calls on an asyncio client of its own (the notifier's,
    outside the server's auto-pipeline), each outcome decoded as call_many decodes it."""
    return [checked_reply(raw) for raw in await _raw_replies(client, commands)]


async def _raw_replies(client: AnyRedis, commands: Sequence[Command]) -> list[Any]:
    """The calls' replies as Redis gave them (an error reply as its exception), in one round trip."""
    return list(await _queue_calls(client.pipeline(transaction=False), commands).execute(raise_on_error=False))


def call_all_sync(client: AnySyncRedis, commands: Sequence[Command]) -> list[Reply | CreditdError]:
    """One pipelined round trip of function calls on a synchronous client (the CLI's batch jobs),
    each outcome decoded as Functions.call_many decodes it."""
    pipe = _queue_calls(client.pipeline(transaction=False), commands)
    return [checked_reply(raw) for raw in pipe.execute(raise_on_error=False)]


class DirectFunctions(Functions):
    """Functions called over a client of a tool's own (an operator command), one round trip per
    call, without the server's auto-pipeline."""

    def __init__(self, client: AnyRedis) -> None:
        self.client = client

    async def call(self, command: Command) -> Reply:
        (outcome,) = await call_all(self.client, [command])
        if isinstance(outcome, CreditdError):
            raise outcome
        return outcome

    async def call_many(self, commands: Sequence[Command]) -> list[Reply | CreditdError]:
        return await call_all(self.client, commands)

    def send(self, command: Command) -> asyncio.Future[Any]:
        return asyncio.ensure_future(self._raw(command))

    async def _raw(self, command: Command) -> Any:
        (raw,) = await _raw_replies(self.client, [command])
        return raw


class SessionFunctions(Functions):
    """The function calls of one SelfService request: each one made for the portal session carries
    the session's key (store/calls.py with_session), so that the function refuses it once the session
    has ended, in the same call; the others (a voucher's, in its own slot) go as they are."""

    def __init__(self, functions: Functions, session_key: str) -> None:
        self.functions, self.session_key = functions, session_key

    def _guarded(self, command: Command) -> Command:
        return with_session(command, self.session_key) if command[0] in SESSION_GUARDED else command

    async def call(self, command: Command) -> Reply:
        return await self.functions.call(self._guarded(command))

    def send(self, command: Command) -> asyncio.Future[Any]:
        return self.functions.send(self._guarded(command))

    async def call_many(self, commands: Sequence[Command]) -> list[Reply | CreditdError]:
        return await self.functions.call_many([self._guarded(command) for command in commands])
