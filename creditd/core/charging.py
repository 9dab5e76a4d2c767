"""Charge: the hot path. One request is one call of the Lua function `charge`; a batch is many calls
issued together, so the auto-pipeline sends them in as few round trips as it can. And the price of a
charge's units now, charging nothing (`quote_price`, read-only)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec

from creditd.clock import Clock
from creditd.errors import CreditdError
from creditd.logs import caller
from creditd.store.calls import Calls, ChargeLike, Command
from creditd.store.codes import AnswerFormat
from creditd.store.functions import Functions, checked
from creditd.store.replies import ANSWER_DECODER, QUOTE_DECODER, AnswerRecord, QuoteRecord, Reply, success_body


class ChargeOutcome(msgspec.Struct, frozen=True):
    answer: AnswerRecord
    replayed: bool
    # The stored answer exactly as Redis returned it: a replay returns the same bytes.
    answer_json: bytes


def _outcome(reply: Reply) -> ChargeOutcome:
    return ChargeOutcome(ANSWER_DECODER.decode(reply.body), reply.replayed, reply.body)


def outcome_of(raw: Any) -> ChargeOutcome:
    """A charge's outcome from its raw reply (Charging.send); raises the error its code stands for."""
    success = success_body(raw)
    if success is None:
        return _outcome(checked(raw))
    body, replayed = success
    return ChargeOutcome(ANSWER_DECODER.decode(body), replayed, body)


class Charging:
    def __init__(self, calls: Calls, functions: Functions, clock: Clock) -> None:
        self._calls = calls
        self._functions = functions
        self._clock = clock

    def command(self, request: ChargeLike, answer_format: AnswerFormat = AnswerFormat.JSON) -> Command:
        return self._calls.charge(request, self._clock.now_ms(), caller(), answer_format)

    async def charge(self, request: ChargeLike) -> ChargeOutcome:
        return outcome_of(await self._functions.send(self.command(request)))

    def send(self, request: ChargeLike) -> asyncio.Future[Any]:
        """The charge's raw reply, its answer in protobuf (lua/lib/answer.lua), to await: for the gRPC
        edge, which awaits it in its own coroutine (one layer less on every request) and sends the
        answer on as it is (api/answers.py)."""
        return self._functions.send(self.command(request, AnswerFormat.PROTOBUF))

    async def send_many(self, requests: Sequence[ChargeLike]) -> list[Reply | CreditdError]:
        """The charges' replies, issued together (one pipeline when they fit), their answers in
        protobuf: for the gRPC edge's ChargeBatch, which sends them on as they are."""
        commands = [self.command(request, AnswerFormat.PROTOBUF) for request in requests]
        return await self._functions.call_many(commands)

    async def quote(self, request: ChargeLike) -> QuoteRecord:
        """What the request's units (rating group, service, requested units; called party and visited
        network) would cost now at the account's tariffs; nothing is reserved, charged or written."""
        reply = await self._functions.call(self._calls.quote_price(request, self._clock.now_ms()))
        return QUOTE_DECODER.decode(reply.body)
