"""creditd/contract.py is the one place the id character sets and numeric bounds are written: the Python
regex and the Lua pattern rendered from each rule agree on the same cases (every printable ASCII
character alone and in an id, the edges of each range, non-ASCII text), the rendered library carries
them in CONTRACT, and no Lua or Python module spells them again by hand (the patterns that decode
stored records, whose ids were checked on the way in, excepted)."""

from __future__ import annotations

import re
import string

import pytest

from creditd.api import validation
from creditd.config.settings import Settings
from creditd.contract import ID, MAX_EXACT_INTEGER, MAX_UINT32, SESSION_ID, TextRule, lua_contract, refusal_of
from creditd.resources import lua_directory
from creditd.store.connection import AnySyncRedis
from creditd.store.library import render_library

LUA_FIND = "return string.find(ARGV[1], ARGV[2]) ~= nil and 1 or 0"
CASES = [
    *string.printable,
    "acct-7",
    "66812345678",
    "a.b_c:d-e",
    "gw{1}",
    "two words",
    "ünïcode",
    "tab\there",
    "~|!",
    "z",
    "{",
    "}",
]


@pytest.mark.parametrize("rule", [ID, SESSION_ID], ids=["ID", "SESSION_ID"])
def test_python_and_lua_agree_on_every_case(redis_client: AnySyncRedis, rule: TextRule) -> None:
    regex, pattern = rule.regex(), rule.lua_pattern()
    for case in CASES:
        in_python = regex.fullmatch(case) is not None
        in_lua = redis_client.eval(LUA_FIND, 0, case, pattern) == 1
        assert in_python == in_lua, (case, regex.pattern, pattern)


def test_the_edge_refuses_what_the_rules_refuse_with_their_words() -> None:
    """validation's one-regex checks (check_id, check_session_id) pass exactly what refusal_of
    passes, and refuse with its message: every case, the empty text and the edges of each length."""
    max_session = 40
    for case in [*CASES, "", "A" * 64, "A" * 65, "s" * max_session, "s" * (max_session + 1), "é" * 20]:
        for rule, check, maximum in (
            (ID, lambda text: validation.check_id(text, "account_id"), 64),
            (SESSION_ID, lambda text: validation.check_session_id(text, max_session), max_session),
        ):
            field = "account_id" if rule is ID else "session_id"
            expected = refusal_of(rule, case, field, maximum)
            try:
                check(case)
            except validation.InvalidArgument as error:
                assert error.message == expected, (case, field)
            else:
                assert expected is None, (case, field)


def test_the_rules_say_what_the_contract_says() -> None:
    assert ID.regex().fullmatch("A" * 64) and not ID.regex().fullmatch("A" * 65)
    assert not ID.regex().fullmatch("a b") and not ID.regex().fullmatch("{a}")
    assert SESSION_ID.regex().fullmatch("sess;1/x@y") and not SESSION_ID.regex().fullmatch("s{1}")
    assert (MAX_EXACT_INTEGER, MAX_UINT32) == (2**53 - 1, 2**32 - 1)


def test_the_library_carries_the_contract(settings: Settings) -> None:
    source = render_library(settings)
    contract = lua_contract()
    assert '["id_pattern"] = ' in source and '["session_id_pattern"] = ' in source
    assert f'["max_exact_integer"] = {contract["max_exact_integer"]}' in source
    assert f'["max_uint32"] = {MAX_UINT32}' in source


def test_no_module_spells_the_rules_again() -> None:
    lua = [path.read_text() for path in lua_directory().rglob("*.lua")]
    assert not any("9007199254740991" in text or "4294967295" in text for text in lua)
    # the check of an id (records' decoding patterns read ids already checked)
    assert not any(re.search(r"'\^\[%w%\._:%-\]\+\$'", text) for text in lua)
    python = [path.read_text() for path in (lua_directory().parent / "creditd").rglob("*.py")]
    spelled = [text for text in python if "A-Za-z0-9._:-" in text and "contract" not in text[:200]]
    assert spelled == []
