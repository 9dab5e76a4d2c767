"""Reading a value stored packed (an account, a session: one MessagePack string) that an older version
may have written as a hash, the Python side of lua/lib/keys.lua's packed_at: GET, and on WRONGTYPE the
hash's fields as text, which the caller reads the older way."""

from __future__ import annotations

from redis.exceptions import ResponseError

from creditd.store.connection import AnyRedis, AnySyncRedis
from creditd.store.replies import as_text

# What GET answers for a key of another type.
WRONG_TYPE = "WRONGTYPE"
# The packed value (None: no such key), or the older hash's fields (None: packed or no key).
Stored = tuple[bytes | None, dict[str, str] | None]


def is_wrong_type(error: BaseException) -> bool:
    return isinstance(error, ResponseError) and str(error).startswith(WRONG_TYPE)


def hash_fields(mapping: object) -> dict[str, str]:
    assert isinstance(mapping, dict), mapping
    return {as_text(name): as_text(value) for name, value in mapping.items()}


def _packed(value: object) -> bytes | None:
    if value is not None and not isinstance(value, bytes):  # our clients never decode replies
        raise TypeError("a packed value is read as bytes")
    return value


def read_stored(client: AnySyncRedis, key: str) -> Stored:
    try:
        return _packed(client.get(key)), None
    except ResponseError as error:
        if not is_wrong_type(error):
            raise
        return None, hash_fields(client.hgetall(key))


async def read_stored_async(client: AnyRedis, key: str) -> Stored:
    try:
        return _packed(await client.get(key)), None
    except ResponseError as error:
        if not is_wrong_type(error):
            raise
        return None, hash_fields(await client.hgetall(key))
