"""Charge: the hot path. One request is one call of the Lua function `charge`; a batch is many calls
issued together, so the auto-pipeline sends them in as few round trips as it can."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from creditd.clock import Clock
from creditd.errors import CreditdError
from creditd.logs import caller
from creditd.store.functions import Functions, decode_charge_reply
from creditd.store.keys import Keys
from creditd.store.pipeline import Command
from creditd.store.replies import ANSWER_DECODER, AnswerRecord


class UnitLike(Protocol):
    rating_group: int
    requested: int
    used: int


class ChargeLike(Protocol):
    """A creditd.v1.ChargeRequest or anything shaped like one."""

    session_id: str
    request_type: int
    request_number: int
    account_id: str
    gateway_id: str

    @property
    def units(self) -> Sequence[UnitLike]: ...


class ChargeOutcome(msgspec.Struct, frozen=True):
    answer: AnswerRecord
    replayed: bool
    # The stored answer exactly as Redis returned it: a replay returns the same bytes.
    answer_json: bytes


class Quota:
    def __init__(self, keys: Keys, functions: Functions, clock: Clock) -> None:
        self._keys = keys
        self._functions = functions
        self._clock = clock

    def command(self, request: ChargeLike) -> Command:
        account_id, gateway_id, session_id = request.account_id, request.gateway_id, request.session_id
        key_list = self._keys.session_call(account_id, gateway_id, session_id)
        args: list[str | int] = [
            self._clock.now_ms(),
            request.request_type,
            request.request_number,
            account_id,
            gateway_id,
            session_id,
            len(request.units),
        ]
        for unit in request.units:
            args += (unit.rating_group, unit.requested, unit.used)
        args.append(caller())
        return "charge", key_list, args

    async def charge(self, request: ChargeLike) -> ChargeOutcome:
        return _outcome(await self._functions.call_raw(self.command(request)))

    async def charge_many(self, requests: Sequence[ChargeLike]) -> list[ChargeOutcome | CreditdError]:
        raw_replies = await self._functions.call_raw_many([self.command(request) for request in requests])
        outcomes: list[ChargeOutcome | CreditdError] = []
        for raw in raw_replies:
            if isinstance(raw, CreditdError):
                outcomes.append(raw)
            elif isinstance(raw, BaseException):
                raise raw
            else:
                outcomes.append(_outcome(raw))
        return outcomes


def _outcome(raw: object) -> ChargeOutcome:
    answer_json, replayed = decode_charge_reply(raw)
    return ChargeOutcome(answer=ANSWER_DECODER.decode(answer_json), replayed=replayed, answer_json=answer_json)
