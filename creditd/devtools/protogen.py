"""Generate the protobuf/gRPC code in creditd/v1 from protos/: the one command for it.

    python -m creditd.devtools.protogen          # write creditd/v1/*_pb2*.py(i)
    python -m creditd.devtools.protogen --check  # exit 1 when the committed code is stale or missing

Needs grpcio-tools (the `test` extra). Generated files are never edited by hand.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPOSITORY_ROOT / "protos"
GENERATED_DIRECTORY = REPOSITORY_ROOT / "creditd" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
# mypy-protobuf's protoc plugins: typed messages, and typed servicers and (async) stubs for mypy.
PLUGINS = ("protoc-gen-mypy", "protoc-gen-mypy_grpc")


def plugin_path(name: str) -> str:
    """The plugin beside this interpreter (pip's scripts directory), else on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install mypy-protobuf (the test extra)")
    return found


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(output_root: Path) -> None:
    from grpc_tools import protoc  # imported here: a build-time tool, not a runtime dependency

    arguments = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        *(f"--plugin={name}={plugin_path(name)}" for name in PLUGINS),
        f"--python_out={output_root}",
        f"--mypy_out={output_root}",
        f"--grpc_python_out={output_root}",
        f"--mypy_grpc_out={output_root}",
        *(str(path) for path in proto_files()),
    ]
    if protoc.main(arguments) != 0:
        raise SystemExit("protoc failed")


def stale_files() -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        fresh_directory = Path(scratch) / "creditd" / "v1"
        fresh = sorted(p.name for p in fresh_directory.iterdir() if p.name.endswith(GENERATED_SUFFIXES))
        stale = []
        for name in fresh:
            committed = GENERATED_DIRECTORY / name
            if not committed.exists() or not filecmp.cmp(committed, fresh_directory / name, shallow=False):
                stale.append(name)
        return stale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when generated code is stale")
    options = parser.parse_args()
    if options.check:
        stale = stale_files()
        if stale:
            sys.exit(f"generated code is stale or missing: {', '.join(stale)}; run python -m creditd.devtools.protogen")
        print("generated code is up to date")
        return
    generate(REPOSITORY_ROOT)
    print(f"generated into {GENERATED_DIRECTORY}")


if __name__ == "__main__":
    main()
