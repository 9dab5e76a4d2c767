"""Typed wrappers over the Lua functions: the replies' shapes decoded, their codes turned into the
exception hierarchy. Key and argument lists are built by quota.py and accounts.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from creditd.errors import Internal, raise_for_code
from creditd.store.pipeline import AutoPipeline, Command


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Reply(msgspec.Struct, frozen=True):
    code: int
    message: str
    body: bytes


def decode_reply(raw: Any) -> Reply:
    """{code, message, body} from every function but charge."""
    if not isinstance(raw, list) or len(raw) != 3 or not isinstance(raw[0], int):
        raise Internal(f"unexpected function reply: {raw!r:.200}")
    body = raw[2] if isinstance(raw[2], bytes) else _text(raw[2]).encode()
    return Reply(code=raw[0], message=_text(raw[1]), body=body)


def decode_charge_reply(raw: Any) -> tuple[bytes, bool]:
    """{answer_json, replayed} from charge."""
    if not isinstance(raw, list) or len(raw) != 2 or not isinstance(raw[0], bytes):
        raise Internal(f"unexpected charge reply: {raw!r:.200}")
    return raw[0], raw[1] == 1


class Functions:
    def __init__(self, pipeline: AutoPipeline) -> None:
        self.pipeline = pipeline

    async def call(self, command: Command) -> Reply:
        """Calls a function and raises unless its code is SUCCESS."""
        reply = decode_reply(await self.pipeline.call(*command))
        raise_for_code(reply.code, reply.message)
        return reply

    async def call_raw(self, command: Command) -> Any:
        return await self.pipeline.call(*command)

    async def call_raw_many(self, commands: Sequence[Command]) -> list[Any]:
        return await self.pipeline.call_many(commands)
