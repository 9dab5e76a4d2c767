"""Rules of the contract that Python and Lua both apply, written once here and rendered for both: the
character sets of ids (as a Python regex and a Lua pattern) and the numeric bounds. The library
renders `CONTRACT` from this module into the Lua chunk (store/library.py) as it renders CONFIG, so the
Lua functions check exactly what the edge checks; tests/test_contract_rules.py feeds both sides the
same cases."""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

# Lua numbers are doubles: integers are exact up to 2^53 - 1.
MAX_EXACT_INTEGER = 2**53 - 1
MAX_UINT32 = 2**32 - 1
# Characters that mean something in a Lua pattern and must be escaped with '%' inside a set.
LUA_MAGIC = "^$()%.[]*+-?"


class TextRule(NamedTuple):
    """Text made only of `characters`: single characters and 'a-z' style ranges, as in a regex set."""

    characters: tuple[str, ...]
    min_length: int
    max_length: int | None  # None: a setting bounds it (limits.max_session_id_length)
    allowed: str  # the characters in words, for the refusal both sides give (refusal_of)

    def regex(self) -> re.Pattern[str]:
        """The rule as a Python regex to fullmatch: its characters, at least min and at most max."""
        members = "".join(re.escape(part) if len(part) == 1 else f"{part[0]}-{part[2]}" for part in self.characters)
        upper = "" if self.max_length is None else str(self.max_length)
        return re.compile(f"[{members}]{{{self.min_length},{upper}}}")

    def lua_pattern(self) -> str:
        """The rule's characters as an anchored Lua pattern (lengths are checked apart, by check_text)."""
        members = "".join(
            (f"%{part}" if part in LUA_MAGIC else part) if len(part) == 1 else f"{part[0]}-{part[2]}"
            for part in self.characters
        )
        return f"^[{members}]+$"


# Accounts, gateways, groups, idempotency keys, names in the configuration: never '{', '}' or a space,
# which would break Redis Cluster hash tags and the members that join ids with spaces.
ID = TextRule(("A-Z", "a-z", "0-9", ".", "_", ":", "-"), 1, 64, "A-Z a-z 0-9 . _ : -")
# A gateway's session id: printable ASCII without space, '{' and '}'.
SESSION_ID = TextRule(("!-z", "|", "~"), 1, None, "printable ASCII but space, { and }")


@functools.cache
def _compiled(rule: TextRule) -> re.Pattern[str]:
    return rule.regex()


def refusal_of(rule: TextRule, text: str, field: str, max_length: int) -> str | None:
    """Why `text` breaks `rule`, in the words lua/lib/checks.lua's check_text uses; None if it keeps it."""
    if not text:
        return f"{field}: must not be empty"
    if len(text.encode()) > max_length:
        return f"{field}: longer than {max_length} characters"
    if not _compiled(rule).fullmatch(text):
        return f"{field}: contains characters other than {rule.allowed}"
    return None


def lua_contract() -> dict[str, str | int]:
    """The CONTRACT table of the Lua chunk."""
    return {
        "id_pattern": ID.lua_pattern(),
        "id_allowed": ID.allowed,
        "session_id_pattern": SESSION_ID.lua_pattern(),
        "session_id_allowed": SESSION_ID.allowed,
        "max_exact_integer": MAX_EXACT_INTEGER,
        "max_uint32": MAX_UINT32,
    }
