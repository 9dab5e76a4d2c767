"""Where the shipped Lua sources and default config live: inside the wheel (creditd/_data) or, for a
source checkout and editable installs, at the repository root."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"creditd resource directory {name!r} not found next to {_PACKAGE}")


def lua_directory() -> Path:
    return _find("lua")


def default_config_path() -> Path:
    return _find("config") / "creditd.toml"
