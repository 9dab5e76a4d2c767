"""docs/design.md stays current where it restates the code: its function table lists every function
with exactly the KEYS that creditd.store.calls lays out, and its key table spells every key of
creditd.store.keys as the code does. The Markdown tables are parsed row by row."""

from __future__ import annotations

from pathlib import Path

from creditd.store.calls import KEY_LAYOUTS
from creditd.store.keys import KEY_PATTERNS
from tests.test_lua_layout import pattern_as_documented

DESIGN = Path(__file__).resolve().parent.parent / "docs" / "design.md"


def table_rows(first_header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose first column is headed first_header."""
    rows: list[list[str]] = []
    inside = False
    for line in DESIGN.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")] if line.startswith("|") else None
        if cells is None:
            inside = False
        elif cells[0] == first_header:
            inside = True
        elif inside and not set(line) <= set("|- "):  # not the separator row
            rows.append(cells)
    return rows


def test_function_table_lists_every_function_with_its_keys() -> None:
    documented = {row[0]: row[1] for row in table_rows("function")}
    assert set(documented) == set(KEY_LAYOUTS)
    for function, layout in KEY_LAYOUTS.items():
        assert documented[function] == (", ".join(layout) or "—"), function


def test_key_table_spells_every_key_as_the_code_does() -> None:
    documented = {row[0]: row[1].strip("`") for row in table_rows("name")}
    assert set(documented) == set(KEY_PATTERNS)
    for name in KEY_PATTERNS:
        assert documented[name] == pattern_as_documented(name), name
