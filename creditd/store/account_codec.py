"""The account hash's scalar fields (lua/lib/account.lua), written once here, and the Lua that reads and
compares them, rendered into the library after lua/lib/numbers.lua as ACCOUNT_CODEC.

The same work written as loops over field lists (defaults, tonumber, a snapshot of what was read, the
comparison before saving) cost every call some 60 000 of Redis' instructions: each loop step of Lua
in Redis costs a few hundred, and a table grown key by key is rehashed as it grows. Unrolled, one
statement a field and one table constructor, it costs a fraction (loadtest.redis_instructions
counts it). The generated functions:

- ACCOUNT_CODEC.names: every scalar field name (what is not one is a bucket, `bucket:<id>`).
- ACCOUNT_CODEC.finish(account): after load_account copied the hash's fields in as text: fields the
  hash lacks take their default (the always-saved ones an older account lacks are also named in
  account.absent), numbers become numbers, and account.loaded keeps the saved fields' values by
  position, for the comparison.
- ACCOUNT_CODEC.changed(account, fields): appends (name, text) of each saved field that differs from
  what was loaded (each, for a new account: no account.loaded; and those the hash lacked); an
  optional field only once it differs from what its absence means.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from creditd.store.lua_values import lua_literal


class Saved(Enum):
    ONCE = "written by create_account (or set_preferences), never by save_account"
    ALWAYS = "written by save_account when it changed, present in every account"
    OPTIONAL = "written by save_account only once it differs from its default; most accounts lack it"


class Field(NamedTuple):
    name: str
    number: bool
    saved: Saved
    # The value of a field the hash lacks (an account written before the field existed, or an
    # optional one); None: every account has it.
    default: int | str | None = None


# In the order save_account's HSET writes them. created_at_ms and initial_balance stay text as read:
# no call computes with them (the card converts created_at_ms as it prints it), and each tonumber
# costs some 2 000 instructions.
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
SAVED = tuple(field for field in ACCOUNT_FIELDS if field.saved is not Saved.ONCE)


def _finish() -> list[str]:
    lines = ["ACCOUNT_CODEC.finish = function(a)", "  local absent"]
    for field in ACCOUNT_FIELDS:
        if field.default is None:
            continue
        default = f"a.{field.name} = {lua_literal(field.default)}"
        if field.saved is Saved.ALWAYS:  # written at the next save, whatever its value
            mark = f"absent = absent or {{}}; absent.{field.name} = true"
            lines.append(f"  if a.{field.name} == nil then {default}; {mark} end")
        else:  # an optional field is written once it differs from its default, a written-once one never
            lines.append(f"  if a.{field.name} == nil then {default} end")
    lines += [f"  a.{field.name} = stored_number(a.{field.name})" for field in ACCOUNT_FIELDS if field.number]
    lines.append("  a.absent = absent")
    lines.append("  a.loaded = { " + ", ".join(f"a.{field.name}" for field in SAVED) + " }")
    return [*lines, "end"]


def _changed() -> list[str]:
    lines = ["ACCOUNT_CODEC.changed = function(a, fields)", "  local loaded, absent, value = a.loaded, a.absent, nil"]
    for position, field in enumerate(SAVED, 1):
        text = "format_integer(value)" if field.number else "value"
        if field.saved is Saved.ALWAYS:
            lines.append(f"  value = a.{field.name}")
            changed = f"loaded == nil or value ~= loaded[{position}] or (absent ~= nil and absent.{field.name})"
        else:
            default = lua_literal(field.default if field.default is not None else "")
            lines.append(f"  value = a.{field.name} or {default}")
            changed = f"value ~= (loaded and loaded[{position}] or {default})"
        lines.append(f"  if {changed} then")
        lines.append(f"    fields[#fields + 1] = '{field.name}'; fields[#fields + 1] = {text}")
        lines.append("  end")
    return [*lines, "end"]


def account_codec() -> str:
    names = ", ".join(f"{field.name} = true" for field in ACCOUNT_FIELDS)
    return "\n".join(
        [
            "-- ACCOUNT_CODEC: generated by creditd/store/account_codec.py from its ACCOUNT_FIELDS.",
            f"local ACCOUNT_CODEC = {{ names = {{ {names} }} }}",
            *_finish(),
            *_changed(),
        ]
    )
