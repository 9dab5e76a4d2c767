"""The rating configuration: destination prefix files read on load, every rule checked offline, and
what the Lua side cannot compute itself (UTC offsets of a time zone, which Lua has no database of).

Rules (docs/design.md, Rating): a called number's destination is the set with its longest matching
prefix; a request's zone is "home" (empty visited PLMN, or one of the plan's home_plmns), the zone that
lists the visited PLMN, or "roaming"; a unit's tariff is, among its rating group's tariffs whose
criteria all hold, the one with the most criteria. Two tariffs with as many criteria that can hold at
once would make the choice arbitrary: a config error naming both.
"""

from __future__ import annotations

import functools
import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from creditd.config.plans import Plan, Tariff
from creditd.config.types import MAX_TIMING_DATES, ClockTime, Plmn, Prefix, Struct, Weekday
from creditd.errors import ConfigError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOME_ZONE = "home"
ROAMING_ZONE = "roaming"
BUILT_IN_ZONES = (HOME_ZONE, ROAMING_ZONE)
MINUTES_PER_DAY = 1440
MAX_PREFIX_DIGITS = 15
# Across every destination set.
MAX_PREFIXES = 1_000_000
# Across every zone (there are about a thousand mobile networks in the world).
MAX_ZONE_PLMNS = 10_000
# UTC offsets are precomputed for these years; before and after, the nearest known offset holds.
OFFSET_YEARS = (2000, 2100)


class Destination(Struct, frozen=True):
    """A destination set: called numbers starting with one of its prefixes (the longest match wins)."""

    prefixes: Annotated[list[Prefix], msgspec.Meta(max_length=MAX_PREFIXES)] = msgspec.field(default_factory=list)
    # One prefix a line, or "prefix,name"; relative to the config file. Read into prefixes on load.
    prefixes_file: Annotated[str, msgspec.Meta(max_length=1024)] = ""


class Zone(Struct, frozen=True):
    plmns: Annotated[list[Plmn], msgspec.Meta(min_length=1, max_length=MAX_ZONE_PLMNS)]


class Timing(Struct, frozen=True):
    """When a tariff applies, in the plan's local time: every condition given must hold. A band that
    crosses midnight belongs to the day it starts (fri 22:00-07:00 includes Saturday 03:00)."""

    weekdays: Annotated[list[Weekday], msgspec.Meta(max_length=7)] = msgspec.field(default_factory=list)
    # Both or neither; neither: all day.
    start: ClockTime | None = None
    end: ClockTime | None = None
    dates: Annotated[list[date], msgspec.Meta(max_length=MAX_TIMING_DATES)] = msgspec.field(default_factory=list)


class RatingSettings(Protocol):
    """What the rating rules read of the settings (creditd.settings.Settings has it all)."""

    @property
    def plans(self) -> dict[str, Plan]: ...

    @property
    def destinations(self) -> dict[str, Destination]: ...

    @property
    def zones(self) -> dict[str, Zone]: ...

    @property
    def timings(self) -> dict[str, Timing]: ...


def clock_minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def read_prefix_file(path: Path) -> list[str]:
    """One prefix a line, or "prefix,name" (the name is for people); blank lines and # comments skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    prefixes: list[str] = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        prefix = text.split(",", 1)[0].strip().removeprefix("+")
        if not prefix.isdigit() or not prefix.isascii() or len(prefix) > MAX_PREFIX_DIGITS:
            raise ConfigError(f"{path}:{number}: prefix {prefix!r}: 1 to {MAX_PREFIX_DIGITS} digits")
        prefixes.append(prefix)
        if len(prefixes) > MAX_PREFIXES:
            raise ConfigError(f"{path}: more than {MAX_PREFIXES} prefixes")
    return prefixes


def load_prefix_files(destinations: dict[str, Destination], base_directory: Path) -> dict[str, Destination]:
    """The destination sets with each one's prefixes_file read into its prefixes."""
    loaded: dict[str, Destination] = {}
    for name, destination in destinations.items():
        if destination.prefixes_file:
            path = base_directory / destination.prefixes_file
            prefixes = [*destination.prefixes, *read_prefix_file(path)]
            destination = msgspec.structs.replace(destination, prefixes=prefixes)
        loaded[name] = destination
    return loaded


def _check_destinations(settings: RatingSettings) -> None:
    owner: dict[str, str] = {}
    total = 0
    for name, destination in settings.destinations.items():
        if not destination.prefixes:
            raise ConfigError(f"destinations.{name}: needs prefixes or a prefixes_file with at least one prefix")
        total += len(destination.prefixes)
        for prefix in destination.prefixes:
            other = owner.setdefault(prefix, name)
            if other != name:
                raise ConfigError(f"destinations.{name}: prefix {prefix} is also in destinations.{other}")
    if total > MAX_PREFIXES:
        raise ConfigError(f"destinations: {total} prefixes, more than {MAX_PREFIXES}")


def _check_zones(settings: RatingSettings) -> None:
    owner: dict[str, str] = {}
    total = sum(len(zone.plmns) for zone in settings.zones.values())
    if total > MAX_ZONE_PLMNS:
        raise ConfigError(f"zones: {total} PLMNs, more than {MAX_ZONE_PLMNS} in all")
    for name, zone in settings.zones.items():
        if name in BUILT_IN_ZONES:
            raise ConfigError(f"zones.{name}: {' and '.join(BUILT_IN_ZONES)} are built in (home_plmns, any other)")
        for plmn in zone.plmns:
            other = owner.setdefault(plmn, name)
            if other != name:
                raise ConfigError(f"zones.{name}: PLMN {plmn} is also in zones.{other}")


def _check_timings(settings: RatingSettings) -> None:
    for name, timing in settings.timings.items():
        where = f"timings.{name}"
        if (timing.start is None) != (timing.end is None):
            raise ConfigError(f"{where}: start and end go together (neither: all day)")
        if timing.start is not None and timing.end is not None:
            if timing.start == "24:00":
                raise ConfigError(f"{where}.start: 24:00 is only an end")
            if timing.start == timing.end:
                raise ConfigError(f"{where}.end: equal to start (leave both out for all day)")
        if len(set(timing.weekdays)) != len(timing.weekdays):
            raise ConfigError(f"{where}.weekdays: a day appears twice")


def _day_intervals(timing: Timing, day: date) -> list[tuple[int, int]]:
    """The minutes of a local day (half-open intervals) in which the timing holds."""

    def day_holds(candidate: date) -> bool:
        weekday_holds = not timing.weekdays or WEEKDAYS[candidate.weekday()] in timing.weekdays
        return weekday_holds and (not timing.dates or candidate in timing.dates)

    if timing.start is None or timing.end is None:
        return [(0, MINUTES_PER_DAY)] if day_holds(day) else []
    start, end = clock_minutes(timing.start), clock_minutes(timing.end)
    if start < end:
        return [(start, end)] if day_holds(day) else []
    intervals = [(0, end)] if day_holds(day - timedelta(days=1)) else []
    return intervals + ([(start, MINUTES_PER_DAY)] if day_holds(day) else [])


def timing_holds(timing: Timing, time_zone: str, instant_ms: int) -> bool:
    """Whether a timing holds at an instant, in the time zone's local time (lua/lib/tariffs.lua
    decides the same in Lua)."""
    local = datetime.fromtimestamp(instant_ms / 1000, UTC).astimezone(ZoneInfo(time_zone))
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in _day_intervals(timing, local.date()))


def matching_tariff(
    settings: RatingSettings,
    plan: Plan,
    rating_group: int,
    service_id: int,
    destination: str,
    zone: str,
    instant_ms: int,
) -> Tariff | None:
    """The tariff that prices a unit with this context at this instant: among the rating group's
    tariffs whose criteria all hold, the one with the most (the checks above make it unique)."""
    best: Tariff | None = None
    for tariff in plan.tariffs:
        if tariff.rating_group != rating_group or (best is not None and tariff.specificity <= best.specificity):
            continue
        if tariff.service_ids and service_id not in tariff.service_ids:
            continue
        if (tariff.destinations and destination not in tariff.destinations) or (
            tariff.zones and zone not in tariff.zones
        ):
            continue
        if tariff.timing is not None and not timing_holds(settings.timings[tariff.timing], plan.time_zone, instant_ms):
            continue
        best = tariff
    return best


def timings_overlap(first: Timing, second: Timing) -> bool:
    """Whether some local minute satisfies both (exact: weekdays repeat weekly, dates are listed)."""
    days = {day + timedelta(days=shift) for day in (*first.dates, *second.dates) for shift in (0, 1)}
    if not days:
        monday = date(2024, 1, 1)
        days = {monday + timedelta(days=shift) for shift in range(7)}
    for day in days:
        for (a_start, a_end), (b_start, b_end) in itertools.product(
            _day_intervals(first, day), _day_intervals(second, day)
        ):
            if max(a_start, b_start) < min(a_end, b_end):
                return True
    return False


def _lists_overlap(first: list[int] | list[str], second: list[int] | list[str]) -> bool:
    return not first or not second or bool(set(first) & set(second))


def tariffs_overlap(first: Tariff, second: Tariff, timings: dict[str, Timing]) -> bool:
    """Whether one request can match both (every criterion is an independent property of a request)."""
    if not _lists_overlap(first.service_ids, second.service_ids):
        return False
    if not _lists_overlap(first.destinations, second.destinations) or not _lists_overlap(first.zones, second.zones):
        return False
    if first.timing is None or second.timing is None or first.timing == second.timing:
        return True
    return timings_overlap(timings[first.timing], timings[second.timing])


def _check_tariff_names(where: str, index: int, tariff: Tariff, settings: RatingSettings) -> None:
    for destination in tariff.destinations:
        if destination not in settings.destinations:
            raise ConfigError(f"{where}.tariffs[{index}].destinations: unknown destination {destination}")
    for zone in tariff.zones:
        if zone not in settings.zones and zone not in BUILT_IN_ZONES:
            raise ConfigError(f"{where}.tariffs[{index}].zones: unknown zone {zone}")
    if tariff.timing is not None and tariff.timing not in settings.timings:
        raise ConfigError(f"{where}.tariffs[{index}].timing: unknown timing {tariff.timing}")


def _check_plan_rating(where: str, plan: Plan, settings: RatingSettings) -> None:
    try:
        ZoneInfo(plan.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}.time_zone: unknown time zone {plan.time_zone!r} (an IANA name)") from None
    names: dict[str, int] = {}
    for index, tariff in enumerate(plan.tariffs):
        if (earlier := names.setdefault(tariff.name, index)) != index:
            raise ConfigError(f"{where}.tariffs[{index}].name: {tariff.name} is also tariffs[{earlier}]")
        _check_tariff_names(where, index, tariff, settings)
    for (i, first), (j, second) in itertools.combinations(enumerate(plan.tariffs), 2):
        if first.rating_group != second.rating_group:
            continue
        if first.unit != second.unit:
            raise ConfigError(
                f"{where}.tariffs[{j}].unit: rating group {first.rating_group} is {first.unit} in {first.name}"
            )
        if first.specificity == second.specificity and tariffs_overlap(first, second, settings.timings):
            raise ConfigError(
                f"{where}.tariffs[{j}]: {second.name} ties with {first.name} (tariffs[{i}]): both can match one "
                "request with as many criteria; narrow one of them"
            )
    scoped = [("bundles", index, item.zones) for index, item in enumerate(plan.bundles)]
    scoped += [("topup_bonuses", index, item.zones) for index, item in enumerate(plan.topup_bonuses)]
    for table, index, zones in scoped:
        for zone in zones:
            if zone not in settings.zones and zone not in BUILT_IN_ZONES:
                raise ConfigError(f"{where}.{table}[{index}].zones: unknown zone {zone}")


def check_rating(settings: RatingSettings) -> None:
    _check_destinations(settings)
    _check_zones(settings)
    _check_timings(settings)
    for plan_name, plan in settings.plans.items():
        _check_plan_rating(f"plans.{plan_name}", plan, settings)


def _offset_s(zone: ZoneInfo, instant: datetime) -> int:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


@functools.lru_cache(maxsize=64)
def utc_offsets(time_zone: str) -> tuple[tuple[int, int], ...]:
    """(from Unix ms, UTC offset in s) at each change of the zone's offset over OFFSET_YEARS, the first
    entry being its offset at their start."""
    zone = ZoneInfo(time_zone)
    instant = datetime(OFFSET_YEARS[0], 1, 1, tzinfo=UTC)
    last = datetime(OFFSET_YEARS[1] + 1, 1, 1, tzinfo=UTC)
    offset = _offset_s(zone, instant)
    changes = [(int(instant.timestamp() * 1000), offset)]
    day = timedelta(days=1)
    while instant < last:
        following = instant + day
        if _offset_s(zone, following) != offset:
            low, high = int(instant.timestamp()), int(following.timestamp())
            while high - low > 1:  # the first second of the new offset
                middle = (low + high) // 2
                low, high = (
                    (middle, high) if _offset_s(zone, datetime.fromtimestamp(middle, UTC)) == offset else (low, middle)
                )
            offset = _offset_s(zone, following)
            changes.append((high * 1000, offset))
        instant = following
    return tuple(changes)
