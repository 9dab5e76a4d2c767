"""An account as stored, for the Python readers that look at it outside the Lua functions (the
auditor, the care console's search, reports, the payments' books).

An account is one MessagePack string (lua/lib/account.lua; creditd/store/account_codec.py lists its
fields); one written by an older version is a hash of the same fields as text, each bucket a field
`bucket:<id>`, until its next save packs it. Both read here into that hash's shape, every value as
text, so that a reader need not know which form it met: `fields_of` for one stored value,
`read_account` for one key, `read_accounts` for many in one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec
from redis.exceptions import ResponseError

from creditd.store.connection import AnyRedis, AnySyncRedis
from creditd.store.replies import as_text

BUCKET_PREFIX = "bucket:"
BUCKETS = "buckets"
# What GET answers for a key of another type: an account still a hash.
WRONG_TYPE = "WRONGTYPE"


def fields_of(packed: bytes | str) -> dict[str, str]:
    """A packed account's fields as the hash form holds them (cmsgpack wrote Lua's whole numbers as
    integers: their text is the same)."""
    if not isinstance(packed, bytes):  # our clients never decode replies: a packed value is bytes
        raise TypeError("a packed account is read as bytes")
    stored = msgspec.msgpack.decode(packed)
    if not isinstance(stored, dict):
        raise ValueError(f"an account is a MessagePack map, not {type(stored).__name__}")
    fields = {name: as_text(value) for name, value in stored.items() if name != BUCKETS}
    # an empty Lua table packs as an empty array
    buckets = stored.get(BUCKETS) or {}
    fields.update({BUCKET_PREFIX + bucket_id: as_text(text) for bucket_id, text in buckets.items()})
    return fields


def _hash_fields(mapping: Mapping[bytes, bytes] | Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {as_text(name): as_text(value) for name, value in mapping.items()}


def _is_wrong_type(error: BaseException) -> bool:
    return isinstance(error, ResponseError) and str(error).startswith(WRONG_TYPE)


def read_account(client: AnySyncRedis, key: str) -> dict[str, str]:
    """The account at key ({} when there is none)."""
    try:
        packed = client.get(key)
    except ResponseError as error:
        if not _is_wrong_type(error):
            raise
        return _hash_fields(client.hgetall(key))
    return fields_of(packed) if packed is not None else {}


async def read_account_async(client: AnyRedis, key: str) -> dict[str, str]:
    """read_account on an asyncio client."""
    try:
        packed = await client.get(key)
    except ResponseError as error:
        if not _is_wrong_type(error):
            raise
        return _hash_fields(await client.hgetall(key))
    return fields_of(packed) if packed is not None else {}


def read_accounts(client: AnySyncRedis, keys: Sequence[str]) -> list[dict[str, str]]:
    """The accounts at keys, in order, in one round trip (plus one for those still hashes)."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    replies = pipe.execute(raise_on_error=False)
    found: list[dict[str, str]] = []
    for key, reply in zip(keys, replies, strict=True):
        if isinstance(reply, BaseException):
            if not _is_wrong_type(reply):
                raise reply
            found.append(_hash_fields(client.hgetall(key)))
        else:
            found.append(fields_of(reply) if reply is not None else {})
    return found
