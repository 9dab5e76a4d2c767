"""The README's Diameter table names every AVP the front reads or writes: each `Code.X` the front's
modules use has its code number in the README's Diameter section (read with a regular expression)."""

from __future__ import annotations

import re
from pathlib import Path

from creditd.diameter.dictionary import Code

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("credit", "identity", "peer", "notices", "server")


def test_every_avp_used_is_in_the_readme_table() -> None:
    used: set[str] = set()
    for name in MODULES:
        used |= set(re.findall(r"Code\.([A-Z_0-9]+)", (ROOT / "creditd" / "diameter" / f"{name}.py").read_text()))
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Diameter Gy/Ro front end") :]
    section = section[: section.index("\n## ", 1)]
    numbers = {int(number) for number in re.findall(r"\b(\d+)\b", section)}
    missing = sorted(f"{name} ({Code[name].value})" for name in used if Code[name].value not in numbers)
    assert len(used) > 40
    assert missing == []
