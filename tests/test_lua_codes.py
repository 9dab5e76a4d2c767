"""The status codes and enum values spelled in lua/lib/codes.lua agree with the Python enums of
creditd.store.codes and with the proto enums, so a code can never mean one thing in Lua, another in
Python and a third on the wire. The Lua file is parsed as text, table by table."""

from __future__ import annotations

import re

from creditd.resources import lua_directory
from creditd.store.codes import (
    AccountStatus,
    AnswerFormat,
    Code,
    ExhaustionPolicy,
    FinalUnitAction,
    RequestType,
    Unit,
)
from creditd.v1 import creditd_pb2 as pb

TABLE = re.compile(r"local (\w+) = \{\n(.*?)\n\}", re.S)
ENTRY = re.compile(r"^\s*(\w+) = (\d+),$")


def lua_tables() -> dict[str, dict[str, int]]:
    source = (lua_directory() / "lib" / "codes.lua").read_text()
    tables = {}
    for name, body in TABLE.findall(source):
        entries = [ENTRY.match(line) for line in body.splitlines()]
        tables[name] = {match.group(1): int(match.group(2)) for match in entries if match}
    return tables


def proto_values(enum: object, skip_zero: bool = True) -> dict[str, int]:
    return {name: number for name, number in enum.items() if number or not skip_zero}


def test_lua_codes_mirror_the_python_enum() -> None:
    assert lua_tables()["CODE"] == {code.name: code.value for code in Code}


def test_lua_answer_formats_mirror_the_python_enum() -> None:
    assert lua_tables()["ANSWER_FORMAT"] == {answer_format.name: answer_format.value for answer_format in AnswerFormat}


def test_diameter_codes_equal_the_proto_result_codes() -> None:
    diameter = {code.name: code.value for code in Code if code.value < 6000}
    proto = proto_values(pb.ResultCode)
    assert {name: proto[name] for name in diameter} == diameter


def test_lua_enums_equal_the_proto_enums() -> None:
    tables = lua_tables()
    assert tables["STATUS"] == proto_values(pb.AccountStatus)
    assert tables["UNIT"] == proto_values(pb.Unit)
    assert tables["POLICY"] == proto_values(pb.ExhaustionPolicy)
    assert tables["FINAL_UNIT_ACTION"] == proto_values(pb.UnitGrant.FinalUnitAction, skip_zero=False)
    assert tables["REQUEST_TYPE"] == proto_values(pb.ChargeRequest.RequestType)


def test_lua_status_names_match_the_statuses() -> None:
    source = (lua_directory() / "lib" / "codes.lua").read_text()
    names = dict(re.findall(r"\[(\d)\] = '(\w+)'", source))
    assert {name: int(number) for number, name in names.items()} == proto_values(pb.AccountStatus)


def test_python_enums_equal_the_lua_and_proto_enums() -> None:
    tables = lua_tables()
    for enum, table, proto in (
        (AccountStatus, "STATUS", proto_values(pb.AccountStatus)),
        (Unit, "UNIT", proto_values(pb.Unit)),
        (ExhaustionPolicy, "POLICY", proto_values(pb.ExhaustionPolicy)),
        (FinalUnitAction, "FINAL_UNIT_ACTION", proto_values(pb.UnitGrant.FinalUnitAction, skip_zero=False)),
        (RequestType, "REQUEST_TYPE", proto_values(pb.ChargeRequest.RequestType)),
    ):
        python = {member.name: member.value for member in enum}
        assert python == tables[table] == proto, enum.__name__
