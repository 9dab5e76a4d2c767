"""Python values written as Lua 5.1 literals (the library's generated CONFIG and KEY_NAMES tables)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

# Mapping keys are invariant: string-keyed and integer-keyed tables are two members.
LuaValue = int | str | bool | Sequence["LuaValue"] | Mapping[str, "LuaValue"] | Mapping[int, "LuaValue"]


def lua_literal(value: LuaValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # Decimal byte escapes: valid Lua 5.1 for any byte, so no input can end the string early.
        escaped = "".join(
            chr(b) if (b < 128 and chr(b).isalnum()) or chr(b) in " ._:/-?=&%+," else f"\\{b:03d}"
            for b in value.encode()
        )
        return f'"{escaped}"'
    if isinstance(value, Mapping):
        items = (f"[{lua_literal(key)}] = {lua_literal(item)}" for key, item in value.items())
        return "{ " + ", ".join(items) + " }"
    return "{ " + ", ".join(lua_literal(item) for item in value) + " }"


def lua_bytes(data: bytes) -> str:
    """A Lua string literal of raw bytes (decimal escapes), such as a MessagePack header."""
    return '"' + "".join(f"\\{byte:03d}" for byte in data) + '"'


# MessagePack's array of 16 to 65 535 values: a 3-byte header, this byte then the count (big-endian).
ARRAY_16 = 0xDC


def lua_array_16_header(count: str) -> str:
    """A Lua expression of the header of an array of `count` values (a Lua expression, at least 16):
    for a count known only when the Lua runs."""
    return f"string.char({ARRAY_16}, math.floor({count} / 256), {count} % 256)"


def msgpack_array_header(count: int) -> bytes:
    """The MessagePack header of an array of `count` values, in the shortest form, as cmsgpack writes
    it: a fixarray (1 byte) up to 15, an array 16 (3 bytes) up to 65 535."""
    return msgspec.msgpack.encode([None] * count)[:-count]
