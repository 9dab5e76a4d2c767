"""The rating part of the library's CONFIG table (lua/lib/tariffs.lua reads it).

Destination prefixes are bucketed by their first PREFIX_BUCKET_DIGITS digits, each bucket one string
',<prefix>=<destination>,...,' that a lookup searches with a plain find; shorter prefixes sit in a
small table. A table of one entry per prefix would cost every call: Redis steps Lua's garbage
collector after calls, and a 50 000-entry table made each one 75 µs slower (loadtest/rating.py);
a thousand strings cost nothing measurable. Zones map each PLMN to its zone (at most
MAX_ZONE_PLMNS in all). Timings become local minutes and day numbers, each plan time zone its UTC
offsets (Lua has no time zone database), and each plan's tariffs are grouped by rating group, most
criteria first."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from creditd.config.plans import Plan, Tariff
from creditd.config.rating import WEEKDAYS, Timing, clock_minutes, utc_offsets
from creditd.config.settings import Settings
from creditd.store.codes import Unit
from creditd.store.lua_values import LuaValue

EPOCH = date(1970, 1, 1)
PREFIX_BUCKET_DIGITS = 3


def _name_set(values: list[str]) -> dict[str, LuaValue]:
    return {value: True for value in values}


def _number_set(values: list[int]) -> dict[int, LuaValue]:
    return {value: True for value in values}


def _tariff_table(tariff: Tariff) -> dict[str, LuaValue]:
    table: dict[str, LuaValue] = {
        "name": tariff.name,
        "unit": Unit[tariff.unit].value,
        "price_minor": tariff.price_minor,
        "block_size": tariff.block_size,
        "default_grant": tariff.default_grant,
        "validity_time_s": tariff.validity_time_s,
        "originating": tariff.direction == "originating",
        "always_allowed": tariff.always_allowed,
        "quota_threshold_percent": tariff.quota_threshold_percent,
        "quota_holding_time_s": tariff.quota_holding_time_s,
    }
    # An absent criterion is an absent key: the tariff matches any value of it.
    if tariff.service_ids:
        table["service_ids"] = _number_set(tariff.service_ids)
    if tariff.destinations:
        table["destinations"] = _name_set(tariff.destinations)
    if tariff.zones:
        table["zones"] = _name_set(tariff.zones)
    if tariff.timing is not None:
        table["timing"] = tariff.timing
    return table


def rating_groups_table(plan: Plan) -> dict[int, LuaValue]:
    by_group: dict[int, list[Tariff]] = defaultdict(list)
    for tariff in plan.tariffs:
        by_group[tariff.rating_group].append(tariff)
    groups: dict[int, LuaValue] = {}
    for rating_group, tariffs in by_group.items():
        ordered = sorted(tariffs, key=lambda tariff: -tariff.specificity)  # stable: config order among equals
        groups[rating_group] = {
            "unit": Unit[tariffs[0].unit].value,
            "timed": any(tariff.timing is not None for tariff in tariffs),
            "tariffs": [_tariff_table(tariff) for tariff in ordered],
        }
    return groups


def _timing_table(timing: Timing) -> dict[str, LuaValue]:
    table: dict[str, LuaValue] = {}
    if timing.weekdays:
        table["weekdays"] = _number_set([WEEKDAYS.index(day) for day in timing.weekdays])
    if timing.start is not None and timing.end is not None:
        table["start_minute"] = clock_minutes(timing.start)
        table["end_minute"] = clock_minutes(timing.end)
    if timing.dates:
        table["dates"] = _number_set([(day - EPOCH).days for day in timing.dates])
    return table


def _time_zone_table(time_zone: str) -> dict[str, LuaValue]:
    offsets = utc_offsets(time_zone)
    return {"starts_ms": [start for start, _ in offsets], "offsets_s": [offset for _, offset in offsets]}


def _prefix_tables(settings: Settings) -> dict[str, LuaValue]:
    short: dict[str, LuaValue] = {}
    buckets: dict[str, list[str]] = defaultdict(list)
    longest = 0
    for name, destination in settings.destinations.items():
        for prefix in destination.prefixes:
            longest = max(longest, len(prefix))
            if len(prefix) < PREFIX_BUCKET_DIGITS:
                short[prefix] = name
            else:
                buckets[prefix[:PREFIX_BUCKET_DIGITS]].append(f"{prefix}={name}")
    return {
        "short_prefixes": short,
        "prefix_buckets": {head: "," + ",".join(sorted(entries)) + "," for head, entries in sorted(buckets.items())},
        "prefix_bucket_digits": PREFIX_BUCKET_DIGITS,
        "max_prefix_digits": longest,
    }


def rating_config_table(settings: Settings) -> dict[str, LuaValue]:
    zone_of_plmn: dict[str, LuaValue] = {plmn: name for name, zone in settings.zones.items() for plmn in zone.plmns}
    return {
        **_prefix_tables(settings),
        "zone_of_plmn": zone_of_plmn,
        "timings": {name: _timing_table(timing) for name, timing in settings.timings.items()},
        "time_zones": {plan.time_zone: _time_zone_table(plan.time_zone) for plan in settings.plans.values()},
    }
