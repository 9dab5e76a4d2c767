"""config/creditd.toml, the sample every operator starts from, states the program's defaults truly:
for every table of the settings that is one struct (server, redis, limits, sweeper, ..., and the
structs nested in them), each option the sample sets equals the default in creditd/config/, unless
it is listed in DIFFERS with the reason the sample departs from it. So a default changed in code
without the sample (or the other way round) fails here. The tables keyed by name (plans,
destinations, zones, timings) are the sample's own content and have no defaults to tie."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from creditd.config.settings import Settings
from creditd.resources import default_config_path

Statement = tuple[str, str, Any, Any]  # table path, option, the sample's value, the default
# (table path, option): why the sample sets something other than the default.
DIFFERS: dict[tuple[str, str], str] = {
    ("numbers", "region"): "the sample plan is Thai; the default (none) accepts only international numbers",
}


def _struct_type(annotation: Any) -> type[msgspec.Struct] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct) else None


def stated_options(table: dict[str, Any], struct: type[msgspec.Struct], path: str) -> Iterator[Statement]:
    """(table path, option, the sample's value, the default) of each option the sample sets."""
    fields = {field.encode_name: field for field in msgspec.structs.fields(struct)}
    for option, value in table.items():
        field = fields[option]  # an unknown option fails to load anyway (forbid_unknown_fields)
        nested = _struct_type(field.type)
        if nested is not None and isinstance(value, dict):
            yield from stated_options(value, nested, f"{path}.{option}")
        elif field.default is not msgspec.NODEFAULT or field.default_factory is not msgspec.NODEFAULT:
            default = field.default if field.default is not msgspec.NODEFAULT else field.default_factory()
            yield path, option, value, msgspec.to_builtins(default)


def sample_statements() -> list[Statement]:
    sample = tomllib.loads(default_config_path().read_text())
    found = []
    for field in msgspec.structs.fields(Settings):
        struct = _struct_type(field.type)
        if struct is not None and field.encode_name in sample:
            found += list(stated_options(sample[field.encode_name], struct, field.encode_name))
    return found


def test_the_sample_states_many_options() -> None:
    # Guards the walk itself: a walk that found nothing would make the test below pass vacuously.
    assert len(sample_statements()) > 50


@pytest.mark.parametrize(("path", "option", "stated", "default"), sample_statements(), ids=lambda v: str(v)[:40])
def test_each_stated_option_is_the_default(path: str, option: str, stated: Any, default: Any) -> None:
    if (path, option) in DIFFERS:
        assert stated != default, f"[{path}] {option}: listed in DIFFERS but equals the default; drop it from DIFFERS"
        return
    assert stated == default, f"[{path}] {option} = {stated!r} in config/creditd.toml, but the default is {default!r}"


def test_a_changed_default_is_caught() -> None:
    class Table(msgspec.Struct):
        interval_s: float = 1.0

    assert [row[2:] for row in stated_options({"interval_s": 2.0}, Table, "t")] == [(2.0, 1.0)]
