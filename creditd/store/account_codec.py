"""The account's scalar fields (lua/lib/account.lua), written once here, and the Lua that reads and
writes them, rendered into the library after lua/lib/numbers.lua as ACCOUNT_CODEC.

An account is stored as one MessagePack string (a map of these fields, plus `buckets`: bucket id ->
its text), read with one GET and written whole with one SET: the hash it was before cost a charge
some 150 000 of Redis' instructions to read (a reply element per field, a Lua string per name and
value, a tonumber per number) and each save a list of changed fields. An account written as a hash
by an older version is still read (its fields as text, `bucket:<id>` fields) and written packed at
its next save. One statement a field, one table constructor: each loop step of Lua in Redis costs a
few hundred instructions, and a table grown key by key is rehashed as it grows. The generated
functions:

- ACCOUNT_CODEC.names: every scalar field name (in a hash, what is not one is a bucket, `bucket:<id>`).
- ACCOUNT_CODEC.finish(account): after a packed account's unpacking: the fields it lacks (optional
  ones at their default, or fields added after it was written) take their default.
- ACCOUNT_CODEC.finish_hash(account): after load_account copied an older hash's fields in as text: finish's
  defaults, then numbers become numbers.
- ACCOUNT_CODEC.stored(account, buckets): the table saving packs: every field, optional ones left out
  while at their default, and `buckets` (nil when the account has none).

creditd/store/account_record.py reads both forms for Python (the auditor, the console, reports).
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from creditd.store.lua_values import lua_literal


class Saved(Enum):
    ONCE = "set by create_account (or set_preferences), never changed by other calls"
    ALWAYS = "present in every account (a default: an account written before the field existed)"
    OPTIONAL = "stored only while it differs from its default; most accounts lack it"


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


def _stored_value(field: Field) -> str:
    if field.saved is not Saved.OPTIONAL:
        return f"a.{field.name}"
    return (
        f"a.{field.name} ~= {lua_literal(field.default if field.default is not None else '')} and a.{field.name} or nil"
    )


def _stored() -> list[str]:
    values = ",\n    ".join(f"{field.name} = {_stored_value(field)}" for field in ACCOUNT_FIELDS)
    return [
        "ACCOUNT_CODEC.stored = function(a, buckets)",
        f"  return {{\n    {values},\n    buckets = buckets,\n  }}",
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
            *_stored(),
        ]
    )
