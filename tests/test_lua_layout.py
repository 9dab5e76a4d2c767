"""The Lua library's structure agrees with its one Python source: every function's header lists the
KEYS that creditd.store.calls lays out for it (names, order and key patterns), functions read their
keys by name only, each lib file's "uses:" line names exactly the lib files it references, the
loader refuses an order that breaks them, and the chunk stays within Lua 5.1's 200 locals (the
estimate is checked against a real FUNCTION LOAD just past it)."""

from __future__ import annotations

import re

import pytest
import redis

from creditd.resources import lua_directory
from creditd.settings import Settings
from creditd.store.calls import KEY_LAYOUTS
from creditd.store.keys import KEY_PATTERNS
from creditd.store.library import LIBRARY_FILES, check_load_order, render_library, uses_of

HEADER_KEY = re.compile(r"^KEYS\[(\d+)\] (\w+)\s+(\S+)", re.M)
LUA_LOCAL_LIMIT = 200
# CONFIG, KEY_NAMES, LIBRARY_VERSION (store/library.py) and ACCOUNT_CODEC (store/account_codec.py), generated.
GENERATED_LOCALS = 4


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


def locals_in_use() -> int:
    """Top-level locals of the chunk plus those of the function file with the most (each function
    file is its own do ... end block, so only one block's locals are active at a time)."""
    top = GENERATED_LOCALS + sum(count_locals(source) for source in lib_files().values())
    return top + max(count_locals(source) for source in function_files().values())


def test_library_stays_within_lua_local_variable_limit() -> None:
    assert locals_in_use() < LUA_LOCAL_LIMIT


def with_extra_locals(source: str, count: int) -> str:
    extra = "\n".join(f"local EXTRA_{n} = {n}" for n in range(count))
    return source.replace("\nlocal KEY_NAMES", f"\n{extra}\nlocal KEY_NAMES", 1)


def test_local_count_matches_what_redis_refuses(redis_client: redis.Redis, settings: Settings) -> None:
    """The count above is what Lua counts: the headroom it leaves loads, one more local does not."""
    source = render_library(settings)
    headroom = LUA_LOCAL_LIMIT - locals_in_use()
    try:
        redis_client.function_load(with_extra_locals(source, headroom), replace=True)
        with pytest.raises(redis.ResponseError, match="local variables"):
            redis_client.function_load(with_extra_locals(source, headroom + 1), replace=True)
    finally:
        redis_client.function_load(source, replace=True)
