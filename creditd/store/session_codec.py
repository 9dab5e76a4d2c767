"""A gateway session as stored (lua/lib/session.lua), written once here: the Python reader and the Lua
that packs and unpacks it, rendered into the library after lua/lib/numbers.lua as SESSION_CODEC.

A session is one string key holding a MessagePack array, StoredSession's fields in order; each open
reservation is one array in it (StoredReservation's fields in order, its rating group first) and so
are each group's prepaid units (StoredPrepaid). Read with one GET and written with one SET, it costs
Redis a fraction of the hash with one text field per reservation that older versions wrote
(loadtest.redis_instructions counts it): arrays rather than maps, because cmsgpack builds a map's
table key by key and each field name is one more string for Lua to make. Such a hash is still read,
here and in Lua (a GET of it fails WRONGTYPE); the next write of the session replaces it by the
packed form.

The generated functions:

- SESSION_CODEC.pack(session): the packed string of a session table as lib/session.lua holds it
  (named fields; reservations and prepaid units keyed by rating group).
- SESSION_CODEC.unpack(text): that table again; an array of another length raises 'corrupt session'
  or 'corrupt reservation'.
"""

from __future__ import annotations

import msgspec

from creditd.store.connection import AnySyncRedis
from creditd.store.lua_values import lua_literal
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
    last_answer: str
    close_reason: str = ""  # 'orphan' when the sweeper closed it
    reservations: list[StoredReservation] = msgspec.field(default_factory=list)
    prepaid: list[StoredPrepaid] = msgspec.field(default_factory=list)


SESSION_DECODER = msgspec.msgpack.Decoder(StoredSession)
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
        last_answer=stored["last_answer"],
        close_reason=stored.get("close_reason", ""),
        reservations=reservations,
        prepaid=prepaid,
    )


def read_session(client: AnySyncRedis, key: str) -> StoredSession | None:
    """The session at key, packed or in the older hash; None when there is none."""
    packed, older = read_stored(client, key)
    if older is not None:
        return _session_of_hash(older)
    return None if packed is None else SESSION_DECODER.decode(packed)


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


def _byte_literal(data: bytes) -> str:
    return '"' + "".join(f"\\{byte:03d}" for byte in data) + '"'


def session_codec() -> str:
    fields = msgspec.structs.fields(StoredSession)
    names = [field.name for field in fields]
    rows, prepaid = names.index("reservations") + 1, names.index("prepaid") + 1
    packed = [
        f"s.{field.name}" if field.required else f"s.{field.name} or {lua_literal(field.default)}"
        for field in fields
        if field.name not in ("reservations", "prepaid")
    ]
    # The array's header, then its values: packed one by one and unpacked as values, not through a
    # table cmsgpack grows slot by slot (the account's codec says more). Another header (an array of
    # another length) is a corrupt session, as before.
    header = msgspec.msgpack.encode([None] * len(names))[: -len(names)]
    assert len(header) == 1, "a session's array no longer takes a 1-byte header"
    values = [f"v{index}" for index in range(1, len(names) + 1)]
    unpacked = ", ".join(f"{name} = v{index}" for index, name in enumerate(names, 1) if index not in (rows, prepaid))
    return "\n".join(
        [
            "-- SESSION_CODEC: generated by creditd/store/session_codec.py from StoredSession and its rows.",
            "local SESSION_CODEC = {}",
            "SESSION_CODEC.pack = function(s)",
            "  local reservations, prepaid, count = {}, {}, 0",
            *_lua_rows("reservations", StoredReservation, "r"),
            "  count = 0",
            *_lua_rows("prepaid", StoredPrepaid, "p"),
            f"  return {_byte_literal(header)} .. cmsgpack.pack({', '.join(packed)}, reservations, prepaid)",
            "end",
            "SESSION_CODEC.unpack = function(text)",
            f"  if string.byte(text, 1) ~= {header[0]} then",
            "    error('corrupt session')",
            "  end",
            f"  local {', '.join(values)} = cmsgpack.unpack(string.sub(text, 2))",
            "  local reservations, prepaid, rows = {}, {}, nil",
            *_lua_keyed("reservations", StoredReservation, rows, "corrupt reservation"),
            *_lua_keyed("prepaid", StoredPrepaid, prepaid, None),
            f"  return {{ {unpacked}, reservations = reservations, prepaid = prepaid }}",
            "end",
        ]
    )
