"""What the subscriber calls the things creditd knows by config ids: bundles, destinations and
services (rating groups), in each language, for every front that speaks to subscribers (the portal,
the notifier's notices). They come from one words file per language next to
the config (config/names/<language>.toml, `[portal] names_dir`), where translators can work
without reading plans:

    [bundles]        data_1gb = "1 GB internet"
    [destinations]   thailand = "Thailand"
    [services]       "1" = "Internet"          # rating group -> service

`missing` lists every id of the config that some language does not name (`creditd portal` refuses
to start with any; a test keeps the shipped config complete). A name still missing at run time (a
plan added without its names) is told by what it is (its unit and size), never by its id.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

import msgspec

from creditd.config.fronts import LANGUAGES
from creditd.config.settings import Settings
from creditd.errors import ConfigError

Label = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
MAX_NAMES = 4096


class LanguageNames(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    bundles: Annotated[dict[str, Label], msgspec.Meta(max_length=MAX_NAMES)] = msgspec.field(default_factory=dict)
    destinations: Annotated[dict[str, Label], msgspec.Meta(max_length=MAX_NAMES)] = msgspec.field(default_factory=dict)
    services: Annotated[dict[str, Label], msgspec.Meta(max_length=MAX_NAMES)] = msgspec.field(default_factory=dict)


Names = dict[str, LanguageNames]
NO_NAMES: Names = {language: LanguageNames() for language in LANGUAGES}


def load_names(directory: Path) -> Names:
    """Every language's words file in `directory`; an absent file names nothing."""
    names: Names = {}
    for language in LANGUAGES:
        path = directory / f"{language}.toml"
        try:
            names[language] = msgspec.convert(tomllib.loads(path.read_text()), LanguageNames)
        except FileNotFoundError:
            names[language] = LanguageNames()
        except (tomllib.TOMLDecodeError, msgspec.ValidationError) as error:
            raise ConfigError(f"{path}: {error}") from None
    return names


def missing(settings: Settings, names: Names) -> list[str]:
    """'<language>: <table>.<id>' for every id of the config some language does not name."""
    wanted: dict[str, set[str]] = {"bundles": set(), "destinations": set(settings.destinations), "services": set()}
    for plan in settings.plans.values():
        wanted["bundles"].update(bundle.bundle_id for bundle in plan.bundles)
        wanted["services"].update(str(tariff.rating_group) for tariff in plan.tariffs)
    found = []
    for language in LANGUAGES:
        own = names.get(language, LanguageNames())
        for table, ids in wanted.items():
            found += [f"{language}: {table}.{name}" for name in sorted(ids) if name not in getattr(own, table)]
    return found
