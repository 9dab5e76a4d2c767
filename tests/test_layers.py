"""The packages of creditd import only downwards: __main__ -> cli -> api, notifier and portal (siblings,
none importing another) -> core -> store -> the bottom modules (settings, rating_config, errors, clock,
logs, metrics, resources), with devtools (test infrastructure) on
store and the generated v1 code only at the gRPC edge and above. Every import of every module is read with
ast (imports inside functions too), so a new upward import fails here, and a cycle cannot form."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import creditd

PACKAGE = Path(creditd.__file__).parent
BOTTOM = 0
# creditd.__main__ is the entry point, above everything.
# api (the gRPC edge), notifier (the subscribers' notices) and portal (their web page) are sibling
# front ends.
RANK = {"store": 1, "core": 2, "devtools": 2, "api": 3, "notifier": 3, "portal": 3, "cli": 4, "__main__": 5}
RANK["chf"] = 3  # the 5G Charging Function (Nchf over HTTP/2), a front end beside api
# portal is a gRPC client of creditd: it reaches the rest only through the wire.
V1_ALLOWED = {"api", "cli", "portal"}


def layer_of(module: str) -> str:
    """'creditd.core.feed' -> 'core'; a bottom module ('creditd.settings') -> 'bottom'."""
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in (*RANK, "v1") else "bottom"


def rank_of(layer: str) -> int:
    return RANK.get(layer, BOTTOM)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("creditd.") and not name.endswith(".__init__")}


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
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
