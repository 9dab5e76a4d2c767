"""A gateway session as stored (lua/lib/session.lua), written once here: the Python reader and the Lua
that packs and unpacks it, rendered into the library after lua/lib/numbers.lua as SESSION_CODEC.

A session is one string key holding a MessagePack array, flat: StoredSession's fields but its
reservations (its prepaid units as a list of rows, StoredPrepaid's fields in order, in the place of
the last), then each open reservation's values in a row of their own at the end (StoredReservation's
fields in order, its rating group first): 9 + 17 * reservations values. Flat because cmsgpack makes
every nested array a Lua table grown slot by slot, and the header before the values lets Lua pack
and unpack them as values (no table of them at all for one reservation): an UPDATE's session costs
Redis some 9 500 instructions less than as the nested array of the version before, which held the
reservations as one list of rows (loadtest.redis_instructions). That nested array (10 values) is
still read, here and in Lua, and so is the hash with one text field per reservation that versions
before it wrote (a GET of it fails WRONGTYPE); the next write of the session packs it flat.

The generated functions:

- SESSION_CODEC.pack(session): the packed string of a session table as lib/session.lua holds it
  (named fields; reservations and prepaid units keyed by rating group).
- SESSION_CODEC.unpack(text): that table again, from the flat array or the nested one; an array of
  another length raises 'corrupt session', a nested row of another length 'corrupt reservation'.
"""

from __future__ import annotations

import msgspec

from creditd.store.connection import AnySyncRedis
from creditd.store.lua_values import ARRAY_16, lua_array_16_header, lua_bytes, lua_literal, msgpack_array_header
from creditd.store.packed import read_stored


class StoredReservation(msgspec.Struct, array_like=True):
    """What a session holds for one rating group (lua/lib/rating.lua): the grant's prices before and
    after its tariff time change, its zone and destination; money the main part, bucket_units what
    it holds of the bucket bucket_id."""

    rating_group: int
    money: int
    bucket_units: int
    bucket_id: str
    price_minor: int
    block_size: int
    unit: int
    validity_time_s: int
    deadline_ms: int
    throttled: bool
    tariff: str
    change_ms: int
    price_after: int
    block_after: int
    tariff_after: str
    zone: str
    destination: str


class StoredPrepaid(msgspec.Struct, array_like=True):
    """Units a group's last charged block paid for beyond its use, at tariff (docs/design.md)."""

    rating_group: int
    units: int
    tariff: str


class StoredSession(msgspec.Struct, array_like=True):
    account_id: str
    gateway_id: str
    state: str  # 'open' or 'closed'
    opened_at_ms: int
    last_number: int
    last_fingerprint: str
    # its bytes: JSON, or a ChargeAnswer's protobuf for the gRPC edge (lua/lib/answer.lua), which
    # MessagePack holds as a str that need not be UTF-8
    last_answer: bytes
    close_reason: str = ""  # 'orphan' when the sweeper closed it
    reservations: list[StoredReservation] = msgspec.field(default_factory=list)
    prepaid: list[StoredPrepaid] = msgspec.field(default_factory=list)


RESERVATION_PREFIX, PREPAID_PREFIX = "reservation:", "prepaid:"
# The text form of a reservation in a hash written before the rating engine: its first nine fields,
# one price, the home zone.
OLDER_RESERVATION_DEFAULTS = ("", "0", "0", "1", "", "home", "")


def _names(struct: type[msgspec.Struct]) -> tuple[str, ...]:
    return struct.__struct_fields__


def _reservation_of_text(rating_group: int, text: str) -> StoredReservation:
    parts = text.split("|")
    if len(parts) == len(_names(StoredReservation)) - 1 - len(OLDER_RESERVATION_DEFAULTS):
        parts += OLDER_RESERVATION_DEFAULTS
    return msgspec.convert([rating_group, *parts], StoredReservation, strict=False)


def _session_of_hash(stored: dict[str, str]) -> StoredSession:
    """A session as the hash of older versions held it: named fields, one '<prefix><rating_group>'
    field per reservation ('|'-joined, StoredReservation's order) and per group's prepaid units."""
    reservations, prepaid = [], []
    for name, value in stored.items():
        if name.startswith(RESERVATION_PREFIX):
            reservations.append(_reservation_of_text(int(name.removeprefix(RESERVATION_PREFIX)), value))
        elif name.startswith(PREPAID_PREFIX):
            units, tariff = value.split("|", 1)
            prepaid.append(StoredPrepaid(int(name.removeprefix(PREPAID_PREFIX)), int(units), tariff))
    return StoredSession(
        account_id=stored["account_id"],
        gateway_id=stored["gateway_id"],
        state=stored["state"],
        opened_at_ms=int(stored["opened_at_ms"]),
        last_number=int(stored["last_number"]),
        last_fingerprint=stored["last_fingerprint"],
        last_answer=stored["last_answer"].encode(),
        close_reason=stored.get("close_reason", ""),
        reservations=reservations,
        prepaid=prepaid,
    )


# The flat array: StoredSession's fields but its reservations, then each reservation's fields in a
# row of their own at the end (HEAD_FIELDS + RESERVATION_FIELDS * reservations values).
HEAD_FIELDS = len(_names(StoredSession)) - 1
RESERVATION_FIELDS = len(_names(StoredReservation))
NESTED_FIELDS = len(_names(StoredSession))  # the array before: reservations as one list of rows


_ITEMS = msgspec.msgpack.Decoder(list[msgspec.Raw])
_ANSWER_INDEX = _names(StoredSession).index("last_answer")
# MessagePack's str and bin headers: the first byte, and how many bytes of it and its length precede
# the payload (a fixstr's length is in its first byte's low five bits).
_PAYLOAD_OFFSET = {0xD9: 2, 0xDA: 3, 0xDB: 5, 0xC4: 2, 0xC5: 3, 0xC6: 5}


def _payload(item: bytes) -> bytes:
    """The bytes of a packed str or bin, which need not be UTF-8 (a protobuf answer)."""
    first = item[0]
    if 0xA0 <= first <= 0xBF:
        return item[1:]
    offset = _PAYLOAD_OFFSET.get(first)
    if offset is None:
        raise ValueError("corrupt session: last_answer is not a string")
    return item[offset:]


def decode_session(packed: bytes) -> StoredSession:
    """A packed session, flat or nested (the version before); ValueError when it is neither."""
    try:
        items = _ITEMS.decode(packed)
    except msgspec.ValidationError as error:
        raise ValueError("corrupt session: not an array") from error
    values = [
        _payload(bytes(item)) if index == _ANSWER_INDEX else msgspec.msgpack.decode(item)
        for index, item in enumerate(items)
    ]
    if len(values) == NESTED_FIELDS and isinstance(values[HEAD_FIELDS], list):
        return msgspec.convert(values, StoredSession)
    rows = len(values) - HEAD_FIELDS
    if rows < 0 or rows % RESERVATION_FIELDS:
        raise ValueError(f"corrupt session: {len(values)} values")
    head, prepaid = values[: HEAD_FIELDS - 1], values[HEAD_FIELDS - 1]
    reservations = [
        values[start : start + RESERVATION_FIELDS] for start in range(HEAD_FIELDS, len(values), RESERVATION_FIELDS)
    ]
    return msgspec.convert([*head, reservations, prepaid], StoredSession)


def read_session(client: AnySyncRedis, key: str) -> StoredSession | None:
    """The session at key, packed (flat or nested) or in the older hash; None when there is none."""
    packed, older = read_stored(client, key)
    if older is not None:
        return _session_of_hash(older)
    return None if packed is None else decode_session(packed)


def _lua_row(variable: str, struct: type[msgspec.Struct]) -> str:
    """A table constructor of a row: its rating group (the loop's key), then the variable's fields."""
    return "{ " + ", ".join(["rating_group", *(f"{variable}.{name}" for name in _names(struct)[1:])]) + " }"


def _lua_named(struct: type[msgspec.Struct]) -> str:
    """A table constructor of a row's fields by name but its rating group (the table's key)."""
    return "{ " + ", ".join(f"{name} = row[{index}]" for index, name in enumerate(_names(struct)[1:], 2)) + " }"


def _lua_rows(field: str, struct: type[msgspec.Struct], variable: str) -> list[str]:
    return [
        f"  for rating_group, {variable} in pairs(s.{field}) do",
        f"    count = count + 1; {field}[count] = {_lua_row(variable, struct)}",
        "  end",
    ]


def _lua_keyed(field: str, struct: type[msgspec.Struct], position: int, check: str | None) -> list[str]:
    length = len(_names(struct))
    lines = [f"  rows = v{position}", "  for index = 1, #rows do", "    local row = rows[index]"]
    if check:
        lines += [f"    if #row ~= {length} then", f"      error('{check}')", "    end"]
    return [*lines, f"    {field}[row[1]] = {_lua_named(struct)}", "  end"]


def _lua_reservation_values(variable: str) -> str:
    """A reservation's values in a row, its rating group (the loop's key) first."""
    return ", ".join(["rating_group", *(f"{variable}.{name}" for name in _names(StoredReservation)[1:])])


def _lua_pack(head: list[str]) -> list[str]:
    """The flat array: the header, then the values packed one by one (no table of them) for none or
    one reservation; a table of them unpacked into cmsgpack.pack for several."""
    one = HEAD_FIELDS + RESERVATION_FIELDS
    assert len(msgpack_array_header(HEAD_FIELDS)) == 1 and len(msgpack_array_header(one)) == 3
    values = f"{', '.join(head)}, prepaid"
    return [
        "SESSION_CODEC.pack = function(s)",
        "  local prepaid, count = {}, 0",
        *_lua_rows("prepaid", StoredPrepaid, "p"),
        "  local rating_group, r = next(s.reservations)",
        "  if rating_group == nil then",
        f"    return {lua_bytes(msgpack_array_header(HEAD_FIELDS))} .. cmsgpack.pack({values})",
        "  end",
        "  if next(s.reservations, rating_group) == nil then",
        f"    return {lua_bytes(msgpack_array_header(one))} .. cmsgpack.pack({values}, {_lua_reservation_values('r')})",
        "  end",
        f"  local all = {{ {values} }}",
        "  for rating_group, r in pairs(s.reservations) do",
        f"    for _, value in ipairs({{ {_lua_reservation_values('r')} }}) do",
        "      all[#all + 1] = value",
        "    end",
        "  end",
        "  count = #all -- an array 16 (3-byte header): several reservations make more than 15 values",
        f"  return {lua_array_16_header('count')} .. cmsgpack.pack(unpack(all, 1, count))",
        "end",
    ]


def _lua_named_at(base: str) -> str:
    """A table constructor of a reservation's fields by name from values[base] on (its rating group)."""
    return (
        "{ "
        + ", ".join(f"{name} = v[{base} + {index}]" for index, name in enumerate(_names(StoredReservation)[1:], 1))
        + " }"
    )


def session_codec() -> str:
    fields = msgspec.structs.fields(StoredSession)
    names = [field.name for field in fields]
    rows, prepaid = names.index("reservations") + 1, names.index("prepaid") + 1
    head_fields = [field for field in fields if field.name not in ("reservations", "prepaid")]
    head = [
        f"s.{field.name}" if field.required else f"s.{field.name} or {lua_literal(field.default)}"
        for field in head_fields
    ]
    nested_header = msgpack_array_header(NESTED_FIELDS)
    assert len(nested_header) == 1, "the nested session's array no longer takes a 1-byte header"
    nested = [f"v{index}" for index in range(1, NESTED_FIELDS + 1)]
    from_nested = ", ".join(f"{name} = v{index}" for index, name in enumerate(names, 1) if index not in (rows, prepaid))
    from_flat = ", ".join(f"{field.name} = v[{index}]" for index, field in enumerate(head_fields, 1))
    return "\n".join(
        [
            "-- SESSION_CODEC: generated by creditd/store/session_codec.py from StoredSession and its rows.",
            "local SESSION_CODEC = {}",
            *_lua_pack(head),
            "-- The nested array of the version before: reservations and prepaid units as lists of rows.",
            "SESSION_CODEC.unpack_nested = function(text)",
            f"  local {', '.join(nested)} = cmsgpack.unpack(string.sub(text, 2))",
            "  local reservations, prepaid, rows = {}, {}, nil",
            *_lua_keyed("reservations", StoredReservation, rows, "corrupt reservation"),
            *_lua_keyed("prepaid", StoredPrepaid, prepaid, None),
            f"  return {{ {from_nested}, reservations = reservations, prepaid = prepaid }}",
            "end",
            "SESSION_CODEC.unpack = function(text)",
            "  local first = string.byte(text, 1)",
            f"  if first == {nested_header[0]} then",
            "    return SESSION_CODEC.unpack_nested(text)",
            "  end",
            "  local v",
            f"  if first == {ARRAY_16} then -- an array 16: a 3-byte header",
            "    v = { cmsgpack.unpack(string.sub(text, 4)) }",
            "  elseif first >= 144 and first <= 159 then -- a fixarray: a 1-byte header",
            "    v = { cmsgpack.unpack(string.sub(text, 2)) }",
            "  else",
            "    error('corrupt session')",
            "  end",
            f"  local count = #v - {HEAD_FIELDS}",
            f"  if count < 0 or count % {RESERVATION_FIELDS} ~= 0 then",
            "    error('corrupt session')",
            "  end",
            "  local reservations, prepaid, rows = {}, {}, nil",
            f"  for base = {HEAD_FIELDS + 1}, #v, {RESERVATION_FIELDS} do",
            f"    reservations[v[base]] = {_lua_named_at('base')}",
            "  end",
            f"  rows = v[{HEAD_FIELDS}]",
            "  for index = 1, #rows do",
            "    local row = rows[index]",
            f"    prepaid[row[1]] = {_lua_named(StoredPrepaid)}",
            "  end",
            f"  return {{ {from_flat}, reservations = reservations, prepaid = prepaid }}",
            "end",
        ]
    )
