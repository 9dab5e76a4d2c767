"""creditd chf's own OpenAPI document (creditd/chf/openapi.yaml) stays within 3GPP's: every schema it
defines exists in TS 32.291 or TS 29.571 under the same name, with the same type, the same required
attributes, the same patterns and bounds, enumeration values 3GPP lists, and only attributes 3GPP
defines, each of the same type or referring to the schema of the same name. It is checked against
tests/data/3gpp_nchf_schemas.json, a trimmed copy of 3GPP's schemas written by tests/trim_3gpp.py
(the source is named inside), so that no 3GPP file is needed here. A second test checks that the
document is valid OpenAPI 3.0 and that the paths are TS 32.291's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate

from creditd.chf.app import DOCUMENT

FRAGMENTS = Path(__file__).parent / "data" / "3gpp_nchf_schemas.json"
OURS: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())
THEIRS: dict[str, Any] = json.loads(FRAGMENTS.read_text())["schemas"]
COMPARED = ("type", "pattern", "minimum", "maximum", "format")


def shape(schema: dict[str, Any]) -> Any:
    """A property's shape as the trimmed copy spells it: the name it refers to, or its type."""
    if "$ref" in schema:
        return {"$ref": schema["$ref"].rsplit("/", 1)[1]}
    out = {key: schema[key] for key in COMPARED if key in schema}
    if "items" in schema:
        out["items"] = shape(schema["items"])
    return out


def enum_values(schema: dict[str, Any]) -> set[str]:
    return {value for part in schema.get("anyOf", []) for value in part.get("enum", [])}


@pytest.mark.parametrize("name", sorted(OURS["components"]["schemas"]))
def test_each_schema_is_3gpps(name: str) -> None:
    ours = OURS["components"]["schemas"][name]
    assert name in THEIRS, f"{name}: no schema of this name in TS 32.291 or TS 29.571"
    theirs = THEIRS[name]
    if "$ref" in theirs or "$ref" in ours:
        assert shape(ours) == theirs, name
        return
    for key in COMPARED:
        assert ours.get(key) == theirs.get(key), f"{name}.{key}: ours {ours.get(key)!r}, 3GPP {theirs.get(key)!r}"
    assert sorted(ours.get("required", [])) == sorted(theirs.get("required", [])), f"{name}.required"
    assert enum_values(ours) <= enum_values(theirs), f"{name}: values 3GPP does not list"
    for attribute, schema in ours.get("properties", {}).items():
        assert attribute in theirs.get("properties", {}), f"{name}.{attribute}: not a 3GPP attribute"
        mine, theirs_attribute = shape(schema), theirs["properties"][attribute]
        assert mine == {k: v for k, v in theirs_attribute.items() if k in (*COMPARED, "$ref", "items")}, (
            f"{name}.{attribute}: ours {mine}, 3GPP {theirs_attribute}"
        )


def test_the_document_is_openapi_with_3gpps_paths() -> None:
    validate(OURS)
    assert OURS["servers"][0]["url"] == "{apiRoot}/nchf-convergedcharging/v3"
    assert sorted(OURS["paths"]) == [
        "/chargingdata",
        "/chargingdata/{ChargingDataRef}/release",
        "/chargingdata/{ChargingDataRef}/update",
    ]
    created = OURS["paths"]["/chargingdata"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ChargingDataResponse"}
