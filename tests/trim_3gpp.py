"""Writes the trimmed copy of 3GPP's schemas that tests/test_chf_document.py checks creditd chf's OpenAPI
document against, so that the tests need no 3GPP file:

    python3 -m tests.trim_3gpp SPECS_DIR tests/data/3gpp_nchf_schemas.json

SPECS_DIR holds 3GPP's OpenAPI documents (TS32291_Nchf_ConvergedCharging.yaml, TS29571_CommonData.yaml,
as published by 3GPP and mirrored in jdegre/5GC_APIs). For every schema creditd's document defines, the
schema of that name in TS 32.291 (else TS 29.571) is kept with only what the check compares: type,
properties (those creditd's document lists: their type or the name they refer to), required, enum,
pattern, minimum, maximum, anyOf, allOf. 3GPP's YAML has tab-indented comment lines that strict YAML
parsers refuse: they are dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from creditd.chf.app import DOCUMENT

KEPT = ("type", "required", "enum", "pattern", "minimum", "maximum", "format")
SOURCES = ("TS32291_Nchf_ConvergedCharging.yaml", "TS29571_CommonData.yaml")


def load_3gpp(path: Path) -> dict[str, Any]:
    lines = [line for line in path.read_text().splitlines() if not (line.lstrip().startswith("#") and "\t" in line)]
    loaded: dict[str, Any] = yaml.safe_load("\n".join(lines))
    return loaded


def trimmed(schema: Any, used: Any = None) -> Any:
    """The compared parts of a 3GPP schema; of its properties, those creditd's schema (used) lists."""
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return {"$ref": schema["$ref"].rsplit("/", 1)[1]}
    out = {key: schema[key] for key in KEPT if key in schema}
    if "properties" in schema:
        listed = (used or {}).get("properties") or {}
        out["properties"] = {name: trimmed(value) for name, value in schema["properties"].items() if name in listed}
    if "items" in schema:
        out["items"] = trimmed(schema["items"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in schema:
            out[key] = [trimmed(part) for part in schema[key]]
    return out


def main() -> None:
    specs, target = Path(sys.argv[1]), Path(sys.argv[2])
    ours = yaml.safe_load(DOCUMENT.read_text())["components"]["schemas"]
    theirs = [load_3gpp(specs / name)["components"]["schemas"] for name in SOURCES]
    fragments: dict[str, Any] = {
        "source": "3GPP TS 32.291 V18.4.0 (Nchf_ConvergedCharging API 3.2.0-alpha.4) and TS 29.571 common data, "
        "as mirrored in github.com/jdegre/5GC_APIs commit 045f2ab; trimmed by tests/trim_3gpp.py "
        "(c) 3GPP Organizational Partners",
        "schemas": {},
    }
    for name in sorted(ours):
        found = next((document[name] for document in theirs if name in document), None)
        if found is not None:
            fragments["schemas"][name] = trimmed(found, ours[name])
    target.write_text(json.dumps(fragments, indent=1, sort_keys=True) + "\n")
    print(f"{len(fragments['schemas'])} of {len(ours)} schemas written to {target}")


if __name__ == "__main__":
    main()
