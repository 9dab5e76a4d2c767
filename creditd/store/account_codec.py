"""The account's scalar fields (lua/lib/account.lua), written once here, and the Lua that reads and
writes them, rendered into the library after lua/lib/numbers.lua as ACCOUNT_CODEC.

An account is stored as one MessagePack string, read with one GET and written whole with one SET: an
array, the count of its buckets first, then ACCOUNT_FIELDS in order (a field without a value written
as its default, or false when it has none), then each bucket's BUCKET_VALUES. An array rather than a
map: a map stores every field's name in every account (more than half of a new account's bytes) and
cmsgpack builds its table key by key, making a Lua string of each name; the array is read into one
table constructor. The buckets' values follow the fields rather than forming arrays of their own:
cmsgpack makes a table, grown slot by slot, of every array it unpacks, where the values of a stream
come back as values.
A field is only ever added after the others, with a default: the version that adds one tells an
array written before it by its length (the count, the fields and the buckets' values), and reads it
with the default. Three older forms are still read and written as the array at their
next save: the array with the buckets first, as a map of bucket id to its array (or the text an
older version wrote; false when it had none), that the version before wrote; the map of the fields
(`buckets` among them) before that; and the hash of the fields as text (`bucket:<id>` fields) before
that. The generated functions:

- ACCOUNT_CODEC.names: every scalar field name (in a hash, what is not one is a bucket, `bucket:<id>`).
- ACCOUNT_CODEC.read(packed): a stored string (the array, an older array or the older map) as the
  account's table; fields it lacks take their default. Then an older form's buckets (nil: none), or
  nil, the count of the buckets and where their values start. The array's values are unpacked one
  by one after its header (STORED_COUNT, below).
- ACCOUNT_CODEC.finish(account): the fields an account lacks (added after it was written, or optional
  ones a map left out) take their default.
- ACCOUNT_CODEC.finish_hash(account): after load_account copied an older hash's fields in as text: finish's
  defaults, then numbers become numbers.
- ACCOUNT_CODEC.pack(account, bucket_count, packed_buckets): the string to store: the array's header,
  then its values.

creditd/store/account_record.py reads every form for Python (the auditor, the console, reports).
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from creditd.store.lua_values import ARRAY_16, lua_array_16_header, lua_bytes, lua_literal, msgpack_array_header


class Saved(Enum):
    ONCE = "set by create_account (or set_preferences), never changed by other calls"
    ALWAYS = "present in every account (a default: an account written before the field existed)"
    OPTIONAL = "most accounts hold its default; readers (account_record.py) see it only once it differs"


class Field(NamedTuple):
    name: str
    number: bool
    saved: Saved
    # The value of a field the hash lacks (an account written before the field existed, or an
    # optional one); None: every account has it.
    default: int | str | None = None


# created_at_ms and initial_balance stay text when read from an older hash: no call computes with
# them (the card converts created_at_ms as it prints it), and each tonumber costs some 2 000
# instructions.
ACCOUNT_FIELDS = (
    Field("account_id", False, Saved.ONCE),
    Field("currency", False, Saved.ONCE),
    Field("created_at_ms", False, Saved.ONCE),
    Field("initial_balance", False, Saved.ONCE),
    Field("contact_name", False, Saved.ONCE),
    Field("contact_email", False, Saved.ONCE),
    Field("contact_phone", False, Saved.ONCE),
    Field("dealer", False, Saved.ONCE, ""),
    Field("creation_fingerprint", False, Saved.ONCE),
    Field("preferences", False, Saved.ONCE),
    Field("balance", True, Saved.ALWAYS),
    Field("reserved", True, Saved.ALWAYS),
    Field("status_since_ms", True, Saved.ALWAYS),
    Field("ledger_seq", True, Saved.ALWAYS),
    Field("ledger_first_seq", True, Saved.ALWAYS, 1),
    Field("ledger_carried", True, Saved.ALWAYS, 0),
    Field("credit_limit", True, Saved.ALWAYS),
    Field("overage_cycle", True, Saved.ALWAYS, 0),
    Field("overage_spent_minor", True, Saved.ALWAYS, 0),
    Field("status", True, Saved.ALWAYS),
    Field("status_reason", False, Saved.ALWAYS),
    Field("ledger_hash", False, Saved.ALWAYS, ""),
    Field("ledger_trimmed_hash", False, Saved.ALWAYS, ""),
    Field("plan", False, Saved.ALWAYS),
    Field("tier", False, Saved.ALWAYS),
    Field("credit_limit_override", False, Saved.ALWAYS, "0"),
    Field("reminders_sent", True, Saved.ALWAYS, 0),
    Field("billing_cycle_day", True, Saved.ALWAYS, 1),
    Field("plan_changes_applied", False, Saved.ALWAYS, ""),
    Field("loan_outstanding", True, Saved.OPTIONAL, 0),
    Field("bonus_instalments", False, Saved.OPTIONAL, ""),
    Field("group_id", False, Saved.OPTIONAL, ""),
    Field("group_holding", True, Saved.OPTIONAL, 0),
    Field("group_refill_minor", True, Saved.OPTIONAL, 0),
    Field("group_refill_tried_ms", True, Saved.OPTIONAL, 0),
)


def _finish() -> list[str]:
    lines = ["ACCOUNT_CODEC.finish = function(a)"]
    lines += [
        f"  if a.{field.name} == nil then a.{field.name} = {lua_literal(field.default)} end"
        for field in ACCOUNT_FIELDS
        if field.default is not None
    ]
    return [*lines, "end"]


def _finish_hash() -> list[str]:
    lines = ["ACCOUNT_CODEC.finish_hash = function(a)", "  ACCOUNT_CODEC.finish(a)"]
    lines += [f"  a.{field.name} = stored_number(a.{field.name})" for field in ACCOUNT_FIELDS if field.number]
    return [*lines, "end"]


# Where each field sits in the stored array (Lua's indices): the buckets are first.
BUCKETS_POSITION = 1
POSITIONS = {field.name: BUCKETS_POSITION + 1 + index for index, field in enumerate(ACCOUNT_FIELDS)}


def _stored_default(field: Field) -> str:
    """What the array holds for a field the table lacks: its default, else false (read back as nil)."""
    return "false" if field.default is None else lua_literal(field.default)


# The stored array's header, then its values one by one: cmsgpack.pack(v1, ..., vn) writes the values
# back to back, without first building the array as a table, and cmsgpack.unpack of what follows the
# header returns them as values, not as a table grown slot by slot. Reading an account costs some
# 14 000 instructions less, writing it 2 500 (loadtest.redis_instructions); the string is the same.
STORED_COUNT = BUCKETS_POSITION + len(ACCOUNT_FIELDS)
assert msgpack_array_header(STORED_COUNT)[0] == ARRAY_16, "the account's array no longer takes a 3-byte header"


# Each bucket's values after the fields, in this order: its id, then what lua/lib/account.lua's
# bucket_of takes. The array's first value then counts the buckets.
BUCKET_VALUES: tuple[str, ...] = ("bucket_id", "unit", "remaining", "reserved", "expires_at_ms", "priority")
BUCKET_VALUES += ("policy", "amount", "rating_groups", "zones")


# The array's header for an account of up to this many buckets is written into the library: most
# accounts hold none or a few, and working it out costs a call some 1 000 instructions.
HEADERS_WRITTEN = 16


def _pack() -> list[str]:
    """ACCOUNT_CODEC.pack(a, bucket_count, packed_buckets): the header of an array of STORED_COUNT +
    BUCKET_VALUES per bucket values, the count and the fields, then the buckets' values as
    lib/save.lua packed them. (One cmsgpack.pack of the fields and a list of the buckets' values cost
    a call with three buckets 10 000 instructions more: the list, grown slot by slot, and its unpack.)"""
    values = ", ".join(f"a.{field.name} or {_stored_default(field)}" for field in ACCOUNT_FIELDS)
    width = len(BUCKET_VALUES)
    headers = ", ".join(
        f"[{count}] = {lua_bytes(msgpack_array_header(STORED_COUNT + width * count))}"
        for count in range(1, HEADERS_WRITTEN + 1)
    )
    return [
        f"ACCOUNT_CODEC.headers = {{ {headers} }}",
        "ACCOUNT_CODEC.pack = function(a, bucket_count, packed_buckets)",
        "  if bucket_count == 0 then",
        f"    return {lua_bytes(msgpack_array_header(STORED_COUNT))} .. cmsgpack.pack(0, {values})",
        "  end",
        "  local header = ACCOUNT_CODEC.headers[bucket_count]",
        "  if header == nil then",
        f"    local count = {STORED_COUNT} + {width} * bucket_count",
        f"    header = {lua_array_16_header('count')}",
        "  end",
        f"  return header .. cmsgpack.pack(bucket_count, {values}) .. packed_buckets",
        "end",
    ]


def _read() -> list[str]:
    """ACCOUNT_CODEC.read(packed): the array (3-byte header: every array this project wrote, its first
    with 35 fields, holds more than 15 values) read value by value, an older one with fewer fields
    too; a map, as the version before the array wrote it, as cmsgpack unpacks it. Returns the account;
    then the buckets of an older array (its map of bucket id to array or text) or, for the array with
    the buckets after the fields, nil, their count and where they start (the reader checks that they
    end where the string does)."""
    names = [f"v{position}" for position in range(BUCKETS_POSITION + 1, STORED_COUNT + 1)]
    values = ",\n    ".join(f"{field.name} = {name} or nil" for field, name in zip(ACCOUNT_FIELDS, names, strict=True))
    return [
        "ACCOUNT_CODEC.read = function(packed)",
        f"  if string.byte(packed, 1) ~= {ARRAY_16} then",
        "    local t = cmsgpack.unpack(packed)",
        "    if type(t) ~= 'table' or t[1] ~= nil then",
        "      error('corrupt account: neither the array nor a map')",
        "    end",
        "    ACCOUNT_CODEC.finish(t)",
        "    return t, t.buckets",
        "  end",
        f"  local offset, buckets, {', '.join(names)} = cmsgpack.unpack_limit(packed, {STORED_COUNT}, 3)",
        f"  local a = {{\n    {values},\n  }}",
        "  ACCOUNT_CODEC.finish(a)",
        "  if type(buckets) ~= 'number' then",
        "    return a, buckets or nil",
        "  end",
        "  return a, nil, buckets, offset",
        "end",
    ]


def account_codec() -> str:
    names = ", ".join(f"{field.name} = true" for field in ACCOUNT_FIELDS)
    return "\n".join(
        [
            "-- ACCOUNT_CODEC: generated by creditd/store/account_codec.py from its ACCOUNT_FIELDS.",
            f"local ACCOUNT_CODEC = {{ names = {{ {names} }} }}",
            *_finish(),
            *_finish_hash(),
            *_read(),
            *_pack(),
        ]
    )
