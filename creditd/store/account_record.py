"""An account as stored, for the Python readers that look at it outside the Lua functions (the
auditor, the care console's search, reports, the payments' books).

An account is one MessagePack string, an array (lua/lib/account.lua; creditd/store/account_codec.py
lists its fields); one written by an older version is a map of the same fields, or, older still, a
hash of them as text, each bucket a field `bucket:<id>`, until its next save packs it. A bucket is an
few values after the account's fields (in an older array, an array in its map of buckets, or the text
an older version wrote). Each is read here into that hash's shape, every value (a bucket too) as
text, so that a reader need not know which form it met: `fields_of` for one stored value,
`read_account` for one key, `read_accounts` for many in one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from creditd.store.account_codec import ACCOUNT_FIELDS, BUCKET_VALUES, BUCKETS_POSITION, STORED_COUNT, Saved
from creditd.store.connection import AnyRedis, AnySyncRedis
from creditd.store.packed import Stored, hash_fields, is_wrong_type, read_stored, read_stored_async
from creditd.store.replies import as_text

BUCKET_PREFIX = "bucket:"
BUCKETS = "buckets"


def fields_of(packed: bytes) -> dict[str, str]:
    """A packed account's fields as the hash form holds them (cmsgpack wrote Lua's whole numbers as
    integers: their text is the same), from the array or the map an older version wrote; an optional
    field at its default is left out, as the hash and the map left it out."""
    stored = msgspec.msgpack.decode(packed)
    if isinstance(stored, list):
        fields, buckets = _array_fields(stored), stored_buckets(stored)
    elif isinstance(stored, dict):
        fields = {name: as_text(value) for name, value in stored.items() if name != BUCKETS}
        # an empty Lua table packs as an empty array
        buckets = stored.get(BUCKETS) or {}
    else:
        raise ValueError(f"an account is a MessagePack array or map, not {type(stored).__name__}")
    fields.update({BUCKET_PREFIX + bucket_id: bucket_text(bucket) for bucket_id, bucket in buckets.items()})
    return fields


def _bucket_count(stored: list[object]) -> int | None:
    """The count an account array starts with; None for an older array, which starts with its map of
    buckets (false, or an empty Lua table packed as an empty array, when it has none)."""
    first = stored[BUCKETS_POSITION - 1]
    return first if isinstance(first, int) and not isinstance(first, bool) else None


def stored_buckets(stored: list[object]) -> dict[str, object]:
    """An account array's buckets, bucket id -> the values after its id (or the text an older version
    wrote): the values after the fields when the array starts with their count, else the map of an
    older array."""
    first = _bucket_count(stored)
    if first is None:
        older = stored[BUCKETS_POSITION - 1]
        return {as_text(bucket_id): bucket for bucket_id, bucket in older.items()} if isinstance(older, dict) else {}
    width = len(BUCKET_VALUES)
    start = len(stored) - width * first
    if start != STORED_COUNT:
        raise ValueError(f"an account array of {len(stored)} values cannot hold {first} buckets after its fields")
    values = stored[start:]
    return {str(values[index]): values[index + 1 : index + width] for index in range(0, len(values), width)}


def bucket_text(stored: object) -> str:
    """A stored bucket as the text an older version wrote ('<unit>|<remaining>|...', lua/lib/account.lua):
    its array joined, or the text itself."""
    if isinstance(stored, list):
        return "|".join(as_text(value) for value in stored)
    return as_text(stored)


def _array_fields(stored: list[object]) -> dict[str, str]:
    fields = {}
    # zip stops at the fields' end: a field added after it was written is absent, as in a map
    buckets = _bucket_count(stored) or 0
    for field, value in zip(
        ACCOUNT_FIELDS, stored[BUCKETS_POSITION : len(stored) - len(BUCKET_VALUES) * buckets], strict=False
    ):
        if value is False or (field.saved is Saved.OPTIONAL and value == field.default):
            continue
        fields[field.name] = as_text(value)
    return fields


def _fields(stored: Stored) -> dict[str, str]:
    packed, older = stored
    if older is not None:
        return older
    return fields_of(packed) if packed is not None else {}


def read_account(client: AnySyncRedis, key: str) -> dict[str, str]:
    """The account at key ({} when there is none)."""
    return _fields(read_stored(client, key))


async def read_account_async(client: AnyRedis, key: str) -> dict[str, str]:
    """read_account on an asyncio client."""
    return _fields(await read_stored_async(client, key))


def read_accounts(client: AnySyncRedis, keys: Sequence[str]) -> list[dict[str, str]]:
    """The accounts at keys, in order, in one round trip (plus one for each still a hash)."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    found: list[dict[str, str]] = []
    for key, reply in zip(keys, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(reply, BaseException):
            if not is_wrong_type(reply):
                raise reply
            found.append(hash_fields(client.hgetall(key)))
        else:
            found.append(fields_of(reply) if reply is not None else {})
    return found
