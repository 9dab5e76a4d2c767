"""docs/diameter.md's AVP table names every AVP the front reads or writes: each `Code.X` the front's
modules use has its code number in the document's section on deployment, settings and AVPs (read
with a regular expression)."""

from __future__ import annotations

import re
from pathlib import Path

from creditd.diameter.dictionary import Code

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("credit", "events", "identity", "peer", "notices", "server")


def test_every_avp_used_is_in_the_documents_table() -> None:
    used: set[str] = set()
    for name in MODULES:
        used |= set(re.findall(r"Code\.([A-Z_0-9]+)", (ROOT / "creditd" / "diameter" / f"{name}.py").read_text()))
    document = (ROOT / "docs" / "diameter.md").read_text()
    section = document[document.index("## Deployment, settings and every AVP") :]
    numbers = {int(number) for number in re.findall(r"\b(\d+)\b", section)}
    missing = sorted(f"{name} ({Code[name].value})" for name in used if Code[name].value not in numbers)
    assert len(used) > 40
    assert missing == []
