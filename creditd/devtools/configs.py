"""The shipped config copied elsewhere, for tests and benchmarks that start creditd with tables of
their own: its templates_dir made absolute, so the copy finds the shipped templates wherever it is
written."""

from __future__ import annotations

from pathlib import Path

from creditd.resources import default_config_path


def shipped_config_text() -> str:
    shipped = default_config_path()
    return shipped.read_text().replace(
        'templates_dir = "templates"', f'templates_dir = "{shipped.parent / "templates"}"'
    )


def write_shipped_config(path: Path, extra_toml: str = "") -> Path:
    """The shipped config with `extra_toml` appended (new tables), written to `path`."""
    path.write_text(shipped_config_text() + "\n" + extra_toml)
    return path
