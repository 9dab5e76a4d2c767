"""Each Lua function's ARGV is laid out in one place in Python, its builder (a method returning
(function, keys, args) in creditd/store/), and documented in one place in Lua, its header's
`ARGV[i] name` lines. This ties the two: read with ast, the builder's arguments (named by the
variable or attribute each one is, so `request.called_party` is called_party and `int(status)` is
status) are the header's names in the header's order; for a function with a variable part (units,
buckets, records) the fixed arguments before it and the ones after it (`ARGV[last]`,
`ARGV[last - 1]`) are compared. A builder that swapped two arguments, or a header that named one
otherwise, fails here; every function the library ships has its builder found. The charge's
request values, packed into one argument, are tied the same way: the header's `[i] name` lines and
its per-unit names against the list Calls.charge packs and the tuple its loop adds per unit."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import creditd
from creditd.resources import lua_directory

STORE = Path(creditd.__file__).parent / "store"
ARGV_LINE = re.compile(r"^ARGV\[([^\]]+)\]\s+(.+)$", re.M)


def _name_of(expression: ast.expr) -> str:
    if isinstance(expression, ast.Name):
        return expression.id
    if isinstance(expression, ast.Attribute):
        return expression.attr
    if isinstance(expression, ast.Call) and expression.args:  # int(x), _optional(x), str(x)
        return _name_of(expression.args[0])
    return ast.unparse(expression)


def _names(expression: ast.expr) -> list[str]:
    elements = expression.elts if isinstance(expression, (ast.Tuple, ast.List)) else [expression]
    return [_name_of(element) for element in elements]


def builder_arguments() -> dict[str, tuple[list[str], list[str]]]:
    """function -> (the arguments its builder lays out first, those it appends after a variable part)."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    for path in sorted(STORE.glob("*.py")):
        for method in ast.walk(ast.parse(path.read_text())):
            if isinstance(method, ast.FunctionDef):
                found |= _builder_of(method)
    return found


def _builder_of(method: ast.FunctionDef) -> dict[str, tuple[list[str], list[str]]]:
    for node in ast.walk(method):
        if (
            isinstance(node, ast.Return)
            and isinstance(node.value, ast.Tuple)
            and len(node.value.elts) == 3
            and isinstance(node.value.elts[0], ast.Constant)
            and isinstance(node.value.elts[0].value, str)
        ):
            function, arguments = node.value.elts[0].value, node.value.elts[2]
            if isinstance(arguments, ast.Call) and _name_of(arguments.func) == "tuple":
                arguments = arguments.args[0]
            if isinstance(arguments, ast.Name):
                return {function: _assembled(method, arguments.id)}
            return {function: (_names(arguments), [])}
    return {}


def _assembled(method: ast.FunctionDef, variable: str) -> tuple[list[str], list[str]]:
    """A list built as `args = [...]`, a loop adding the variable part, then `args += (...)` or
    `args.append(...)` after the loop."""
    first: list[str] = []
    after: list[str] = []
    looped = False  # what is added before the loop of the variable part belongs to the fixed part
    for statement in method.body:
        looped = looped or isinstance(statement, ast.For)
        added = first if not looped else after
        target = statement.target if isinstance(statement, (ast.AnnAssign, ast.AugAssign)) else None
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
        if (
            isinstance(target, ast.Name)
            and target.id == variable
            and isinstance(statement, (ast.Assign, ast.AnnAssign))
        ):
            assert statement.value is not None
            first = _names(statement.value)
        elif isinstance(target, ast.Name) and target.id == variable and isinstance(statement, ast.AugAssign):
            added += _names(statement.value)
        elif (
            isinstance(statement, ast.Expr)
            and isinstance(statement.value, ast.Call)
            and ast.unparse(statement.value.func) == f"{variable}.append"
        ):
            added += _names(statement.value.args[0])
    return first, after


def header_arguments(function: str) -> tuple[list[str], list[str]]:
    """The header's fixed names (ARGV[1], ARGV[2..4] a, b, c, ...) and its tail (ARGV[last - 1], ARGV[last])."""
    header = (lua_directory() / "functions" / f"{function}.lua").read_text().split("]=]", 1)[0]
    first: list[str] = []
    tail: dict[int, str] = {}
    for index, text in ARGV_LINE.findall(header):
        words = re.findall(r"\w+", text.split(":")[0] if index.startswith("last") else text)
        if index.isdigit():
            first.append(words[0])
        elif re.fullmatch(r"\d+\.\.\d+", index):
            low, high = (int(bound) for bound in index.split(".."))
            first += [name.strip().split()[0] for name in text.split(",")[: high - low + 1]]
        elif index == "last":
            tail[0] = words[0]
        elif (match := re.fullmatch(r"last - (\d+)", index)) is not None:
            tail[int(match.group(1))] = words[0]
    return first, [tail[offset] for offset in sorted(tail, reverse=True)]


FUNCTIONS = sorted(path.stem for path in (lua_directory() / "functions").glob("*.lua"))


def test_every_function_has_a_builder() -> None:
    assert set(FUNCTIONS) <= set(builder_arguments())


@pytest.mark.parametrize("function", FUNCTIONS)
def test_builder_lays_out_what_the_header_documents(function: str) -> None:
    built_first, built_after = builder_arguments()[function]
    documented_first, documented_tail = header_arguments(function)
    if built_after:  # a variable part between: the fixed part before it, the tail after it
        assert built_first == documented_first[: len(built_first)]
        assert built_after == documented_tail
    else:
        assert built_first == documented_first + documented_tail


def _charge_builder() -> ast.FunctionDef:
    tree = ast.parse((STORE / "calls.py").read_text())
    return next(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == "charge")


def _added_per_unit(builder: ast.FunctionDef, variable: str) -> list[str]:
    loop = next(statement for statement in builder.body if isinstance(statement, ast.For))
    added = [
        statement.value
        for statement in loop.body
        if isinstance(statement, ast.AugAssign) and ast.unparse(statement.target) == variable
    ]
    assert len(added) == 1, ast.unparse(loop)
    return _names(added[0])


def test_charge_packs_the_request_values_its_header_documents() -> None:
    header = (lua_directory() / "functions" / "charge.lua").read_text().split("]=]", 1)[0]
    documented = re.findall(r"^  \[(\d+)\] +(\w+)", header, re.M)
    assert [int(index) for index, _ in documented] == list(range(1, len(documented) + 1))
    per_unit = re.search(r"^  \[\d+ \+ 5i \.\.\] +per unit, integers: (.+?)\nARGV", header, re.M | re.S)
    assert per_unit is not None
    builder = _charge_builder()
    built_first, _ = _assembled(builder, "request_values")
    assert built_first == [name for _, name in documented]
    assert _added_per_unit(builder, "request_values") == re.findall(r"(\w+) \(", per_unit.group(1))
