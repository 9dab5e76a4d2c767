"""The Lua library's structure agrees with its one Python source: every function's header lists the
KEYS that creditd.store.calls lays out for it (names, order and key patterns), functions read their
keys by name only, each lib file's "uses:" line names exactly the lib files it references, the
loader refuses an order that breaks them, the rendered chunk has at most 40 top-level names (one
module table per lib file) beside its prelude, which binds exactly the Lua and Redis globals the
sources use, and stays within Lua 5.1's 200 active locals (the estimate is checked against a real
FUNCTION LOAD just past it). Each call's key layout builds every key as its pattern alone would.
The CONFIG table holds exactly the [limits] options the Lua sources read, and a source reading one
that [limits] lacks fails the render. charge.lua's header documents its answer's fields in the
order store/replies.py's AnswerRecord and GrantRecord read them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import redis

from creditd.config.settings import Settings
from creditd.resources import lua_directory
from creditd.store.account_codec import account_codec
from creditd.store.calls import KEY_LAYOUTS
from creditd.store.keys import KEY_PATTERNS, Keys
from creditd.store.library import (
    BLOCK_END,
    BLOCK_START,
    LIBRARY_FILES,
    RUNTIME_GLOBALS,
    WORD,
    check_load_order,
    code_of,
    render_library,
    uses_of,
)
from creditd.store.replies import AnswerRecord, GrantRecord
from creditd.store.session_codec import session_codec

HEADER_KEY = re.compile(r"^KEYS\[(\d+)\] (\w+)\s+(\S+)", re.M)
LUA_LOCAL_LIMIT = 200
# The chunk's top-level names: the generated tables and one module table per lib file, and the
# prelude's locals: the runtime globals and its own four (library.runtime_globals).
MAX_TOP_LEVEL_NAMES = 40 + len(RUNTIME_GLOBALS) + 4


def function_files() -> dict[str, str]:
    return {path.stem: path.read_text() for path in sorted((lua_directory() / "functions").glob("*.lua"))}


def lib_files() -> dict[str, str]:
    return {name: (lua_directory() / "lib" / name).read_text() for name in LIBRARY_FILES}


def header(source: str) -> str:
    return source.split("]=]", 1)[0]


def pattern_as_documented(name: str) -> str:
    placeholders = {
        part: f"<{part}>"
        for part in (
            "account_id",
            "gateway_id",
            "session_id",
            "idempotency_key",
            "role",
            "group_id",
            "agent_id",
            "day",
        )
    }
    return KEY_PATTERNS[name].format(tag="cd:{p:<n>}", **placeholders)


def test_every_shipped_function_has_a_key_layout() -> None:
    assert set(function_files()) == set(KEY_LAYOUTS)


# A partition's lease (claim_partition) is laid out by partition, not by account.
BY_ACCOUNT = sorted(name for name, names in KEY_LAYOUTS.items() if names and "lease" not in names)


@pytest.mark.parametrize("function", BY_ACCOUNT)
def test_a_layout_builds_each_key_as_its_pattern_reads(function: str) -> None:
    """Keys.layout formats one template for all of a call's keys: each must come out as its pattern
    alone gives it, with ids holding what a template could mistake for its own ('%', '{')."""
    keys, names = Keys(256), KEY_LAYOUTS[function]
    ids = {"account_id": "a.b:c-1", "gateway_id": "g%s", "session_id": "s%(x)s%{", "idempotency_key": "k%d"}
    tag = keys.tag(ids["account_id"])
    fields = ids | {"group_id": ids["account_id"], "agent_id": ids["account_id"], "day": ids["idempotency_key"]}
    expected = tuple(KEY_PATTERNS[name].format(tag=tag, **fields) for name in names)
    assert keys.layout(names, **ids) == expected


@pytest.mark.parametrize("function", sorted(KEY_LAYOUTS))
def test_function_header_lists_its_layouts_keys(function: str) -> None:
    documented = HEADER_KEY.findall(header(function_files()[function]))
    layout = KEY_LAYOUTS[function]
    assert [(int(index), name) for index, name, _ in documented] == list(enumerate(layout, start=1))
    for _, name, pattern in documented:
        assert pattern == pattern_as_documented(name), f"{function}: KEYS {name} documented as {pattern}"


@pytest.mark.parametrize("function", sorted(name for name, layout in KEY_LAYOUTS.items() if layout))
def test_function_reads_its_keys_by_name(function: str) -> None:
    source = function_files()[function]
    assert f"named_keys('{function}', raw_keys)" in source
    assert not re.search(r"\bkeys\[", source), "keys by position: use the named table"


def test_no_lib_file_indexes_keys_by_position() -> None:
    for name, source in lib_files().items():
        if name != "keys.lua":  # named_keys itself
            assert not re.search(r"\bkeys\[", source), name


def top_level_names(source: str) -> set[str]:
    declared = re.findall(r"^local (\w+(?:\s*,\s*\w+)*)\s*(?:=|$)", source, re.M)
    names = {name.strip() for names in declared for name in names.split(",")}
    return set(re.findall(r"^local function (\w+)", source, re.M)) | names


def referenced_words(source: str) -> set[str]:
    code = re.sub(r"--\[=\[.*?\]=\]", "", source, flags=re.S)
    code = re.sub(r"--[^\n]*", "", code)
    return set(re.findall(r"\b[A-Za-z_]\w*\b", code))


@pytest.mark.parametrize("name", LIBRARY_FILES)
def test_lib_file_uses_line_names_exactly_what_it_references(name: str) -> None:
    sources = lib_files()
    words = referenced_words(sources[name])
    referenced = {other for other, source in sources.items() if other != name and words & top_level_names(source)}
    assert set(uses_of(sources[name])) == referenced


def test_load_order_is_checked_against_the_uses_lines() -> None:
    sources = lib_files()
    check_load_order(sources)  # the shipped order
    swapped = dict(reversed(list(sources.items())))
    with pytest.raises(ValueError, match="uses"):
        check_load_order(swapped)


def count_locals(source: str) -> int:
    count = 0
    for line in source.splitlines():
        if re.match(r"^local function \w+", line):
            count += 1
        elif match := re.match(r"^local ([\w, ]+?)\s*(=|$)", line):
            count += len(match.group(1).split(","))
    return count


def rendered_locals(source: str) -> tuple[int, int]:
    """The rendered chunk's top-level locals, and the most that one of its blocks (a lib module's,
    a function file's) adds while it is the one active: a block's locals end with it."""
    top, most, block, inside = 0, 0, 0, False
    for line in source.splitlines():
        if line.startswith(BLOCK_START):
            block, inside = 0, True
        elif line.startswith(BLOCK_END):
            most, inside = max(most, block), False
        elif inside:
            block += count_locals(line)
        else:
            top += count_locals(line)
    return top, most


# Lua 5.1's global functions and libraries, and those Redis adds: what a library's code may reach
# only through its environment.
LUA_GLOBALS = {
    "assert", "bit", "cjson", "cmsgpack", "collectgarbage", "error", "gcinfo", "getfenv", "getmetatable",
    "ipairs", "load", "loadstring", "math", "next", "os", "pairs", "pcall", "rawequal", "rawget", "rawset",
    "redis", "select", "setfenv", "setmetatable", "string", "struct", "table", "tonumber", "tostring", "type",
    "unpack", "xpcall",
}  # fmt: skip


def test_every_global_the_library_uses_is_bound_once(settings: Settings) -> None:
    """The prelude binds exactly the globals the sources use: one left out would still work, a
    lookup through the environment on every use, so only this test notices it."""
    directory = lua_directory()
    sources = [path.read_text() for path in sorted(directory.glob("*/*.lua"))] + [account_codec(), session_codec()]
    used = {word for source in sources for word in WORD.findall(code_of(source)) if word in LUA_GLOBALS}
    assert used == set(RUNTIME_GLOBALS)


def test_top_level_names_are_few(settings: Settings) -> None:
    top, _ = rendered_locals(render_library(settings))
    assert top <= MAX_TOP_LEVEL_NAMES, top


def locals_in_use(settings: Settings) -> int:
    top, most = rendered_locals(render_library(settings))
    return top + most


def test_library_stays_within_lua_local_variable_limit(settings: Settings) -> None:
    assert locals_in_use(settings) < LUA_LOCAL_LIMIT


def with_extra_locals(source: str, count: int) -> str:
    extra = "\n".join(f"local EXTRA_{n} = {n}" for n in range(count))
    return source.replace("\nlocal KEY_NAMES", f"\n{extra}\nlocal KEY_NAMES", 1)


def test_local_count_matches_what_redis_refuses(redis_client: redis.Redis, settings: Settings) -> None:
    """The count above is what Lua counts: the headroom it leaves loads, one more local does not."""
    source = render_library(settings)
    headroom = LUA_LOCAL_LIMIT - locals_in_use(settings)
    try:
        redis_client.function_load(with_extra_locals(source, headroom), replace=True)
        with pytest.raises(redis.ResponseError, match="local variables"):
            redis_client.function_load(with_extra_locals(source, headroom + 1), replace=True)
    finally:
        redis_client.function_load(source, replace=True)


def test_config_renders_only_the_limits_lua_reads(settings: Settings) -> None:
    config = settings_table_in(render_library(settings))
    assert '["max_amount_minor"] = ' in config  # read by the charge checks
    assert "max_concurrent_rpcs" not in config  # the gRPC edge's own
    assert "sign_in_codes_per_address" not in config  # the portal's own


def test_a_limit_lua_reads_but_limits_lacks_fails_the_render(settings: Settings, tmp_path: Path) -> None:
    shutil.copytree(lua_directory(), tmp_path / "lua")
    (tmp_path / "lua" / "functions" / "zz_probe.lua").write_text("local x = CONFIG.limits.max_nonsense\n")
    with pytest.raises(ValueError, match=r"CONFIG\.limits\.max_nonsense"):
        render_library(settings, tmp_path / "lua")


def settings_table_in(library: str) -> str:
    """The generated `local CONFIG = ...` line's limits table."""
    line = next(line for line in library.splitlines() if line.startswith("local CONFIG = "))
    return line[line.index("limits") : line.index("}", line.index("limits"))]


def documented_answer(header: str) -> tuple[list[str], list[str]]:
    """lib/answer.lua's documented JSON answer: the names of the answer's fields and of each grant's, in order."""
    shape = re.search(r"answer is JSON\s*\[(.*?)\]\]", header, re.S)
    assert shape is not None, "lib/answer.lua's header no longer documents the answer's JSON"
    text = " ".join(shape.group(1).split())
    outer, grant = text.split("[[", 1)
    grant = grant.split("]", 1)[0]  # up to the end of the first grant
    names = [part.strip().split(" ")[0] for part in grant.split(",")]
    return [part.strip() for part in outer.split(",") if part.strip()], [name for name in names if name]


def test_charge_answer_is_documented_as_the_reply_structs_read_it() -> None:
    header = (lua_directory() / "lib" / "answer.lua").read_text()
    answer, grant = documented_answer(header)
    assert answer == [name for name in AnswerRecord.__struct_fields__ if name != "grants"]
    assert grant == list(GrantRecord.__struct_fields__)
