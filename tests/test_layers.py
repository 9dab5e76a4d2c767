"""The packages of creditd import only downwards: __main__ -> cli -> the front ends (api, diameter,
notifier, portal, console: siblings, none importing another) -> core -> store -> the bottom modules
(config/, contract, errors, clock, logs, metrics, resources), with devtools (test
infrastructure) on store and the generated v1 code only at the gRPC edge and above. Every import of
every module of creditd/ and loadtest/ is read with ast (imports inside functions and under
TYPE_CHECKING too): an upward import fails here; so does a cycle among modules, within a layer as
across layers (found as a strongly connected component of the import graph; a test shows the search
finds one); so does a relative import; and creditd never imports loadtest."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import creditd

PACKAGE = Path(creditd.__file__).parent
LOADTEST = PACKAGE.parent / "loadtest"
BOTTOM = 0
# creditd.__main__ is the entry point, above everything.
# api (the gRPC edge), diameter (Gy/Ro), notifier (the subscribers' notices), portal (their web page),
# console (the care staff's), paygate (the payments' HTTP front) and chf (5G Nchf) are sibling front
# ends; payments (the payments' rules, on store) sits beside core.
RANK = {
    "store": 1,
    "core": 2,
    "devtools": 2,
    "payments": 2,
    "api": 3,
    "diameter": 3,
    "notifier": 3,
    "portal": 3,
    "console": 3,
    "paygate": 3,
    "chf": 3,
    "cli": 4,
    "__main__": 5,
}
# portal and console are gRPC clients of creditd: they reach the rest only through the wire.
V1_ALLOWED = {"api", "cli", "portal", "console"}


def layer_of(module: str) -> str:
    """'creditd.core.feed' -> 'core'; a bottom module ('creditd.config.settings') -> 'bottom'."""
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in (*RANK, "v1") else "bottom"


def rank_of(layer: str) -> int:
    return RANK.get(layer, BOTTOM)


def imported_modules(path: Path, prefixes: tuple[str, ...] = ("creditd.",)) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith(prefixes) and not name.endswith(".__init__")}


def relative_imports(path: Path) -> list[int]:
    """Line numbers of `from . import x` and the like."""
    tree = ast.parse(path.read_text())
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level > 0]


def modules(package: Path = PACKAGE) -> list[tuple[str, Path]]:
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).with_suffix("")
        name = ".".join(relative.parts)
        if not name.startswith("creditd.v1"):
            found.append((name.removesuffix(".__init__"), path))
    return found


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (PACKAGE.parent / relative).with_suffix(".py").exists() or (PACKAGE.parent / relative).is_dir()


@pytest.mark.parametrize(("module", "path"), modules(), ids=[name for name, _ in modules()])
def test_module_imports_only_downwards(module: str, path: Path) -> None:
    own = layer_of(module)
    for target in sorted(imported_modules(path)):
        if not is_module(target):
            continue  # "from creditd.store.calls import Calls" also yields creditd.store.calls.Calls
        layer = layer_of(target)
        if layer == "v1":
            assert own in V1_ALLOWED, f"{module} imports generated proto code {target}"
        elif layer != own:
            assert rank_of(layer) < rank_of(own), f"{module} ({own}) imports {target} ({layer}): upwards"


def test_bottom_modules_import_no_package() -> None:
    for module, path in modules():
        if layer_of(module) == "bottom" and module != "creditd":
            targets = {layer_of(target) for target in imported_modules(path) if is_module(target)}
            assert targets <= {"bottom"}, f"{module} imports {targets - {'bottom'}}"


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an upward import written into a file is reported."""
    sample = tmp_path / "sample.py"
    sample.write_text("def late():\n    from creditd.api.server import CreditdServer\n")
    targets = imported_modules(sample)
    assert "creditd.api.server" in targets and rank_of(layer_of("creditd.api.server")) > rank_of("store")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of a graph (module -> modules it imports): its strongly connected components
    of more than one module, and modules importing themselves (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    found.append(sorted(component))
    return found


def import_graph(package: Path, prefixes: tuple[str, ...]) -> dict[str, set[str]]:
    known = {name for name, _ in modules(package)}
    graph: dict[str, set[str]] = {}
    for name, path in modules(package):
        targets = set()
        for target in imported_modules(path, prefixes):
            # "from creditd.store import calls" names creditd.store.calls; a class name is not a module
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


@pytest.mark.parametrize(("package", "prefix"), [(PACKAGE, "creditd."), (LOADTEST, "loadtest.")])
def test_no_import_cycle(package: Path, prefix: str) -> None:
    assert cycles(import_graph(package, (prefix,))) == []


def test_the_cycle_search_finds_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"], ["e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_relative_import() -> None:
    for module, path in [*modules(PACKAGE), *modules(LOADTEST)]:
        assert relative_imports(path) == [], f"{module}: relative import at lines {relative_imports(path)}"


def test_creditd_never_imports_loadtest() -> None:
    for module, path in modules(PACKAGE):
        assert imported_modules(path, ("loadtest",)) == set(), f"{module} imports loadtest"
