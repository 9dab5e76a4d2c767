"""The rating configuration is checked offline, and every mistake is refused naming the field: a
prefix in two destination sets (both named), two tariffs that could tie (both named; timings that
never meet do not tie, ones that do, including a holiday against a night band, do), unknown
destinations, zones and timings, a bad time zone, built-in zone names, half a band, prefix files
with bad lines. Prefix files load (one prefix a line, or "prefix,name"; relative to the config
file), and `creditd check-config` reports them or exits 2 naming the problem. The UTC offsets handed
to Lua agree with zoneinfo at every transition. Each case parses a real TOML document."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from creditd.config.rating import Timing, timings_overlap, utc_offsets
from creditd.config.settings import Settings, load_settings, parse_settings
from creditd.devtools.configs import shipped_config_text
from creditd.errors import ConfigError

# The shipped config, its templates found wherever a test writes the copy.
SHIPPED = shipped_config_text()


def with_extra(extra: str, base: str = SHIPPED) -> str:
    """The shipped config with more TOML appended (new tables, or tariffs of the sample plan)."""
    return base + "\n" + extra


def parse(text: str, directory: Path | None = None) -> Settings:
    return parse_settings(tomllib.loads(text), "test", directory)


def tariff(name: str, rating_group: int = 2, **criteria: str) -> str:
    lines = [f"{key} = {value}" for key, value in criteria.items()]
    return "\n".join(
        [
            "[[plans.standard.tariffs]]",
            f'name = "{name}"',
            f"rating_group = {rating_group}",
            'unit = "SECONDS"',
            "price_minor = 1",
            "block_size = 60",
            "default_grant = 60",
            "validity_time_s = 600",
            *lines,
        ]
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            '[destinations.mobile]\nprefixes = ["668", "66"]',
            "destinations.mobile: prefix 66 is also in destinations.thailand",
        ),
        (
            tariff("voice_out_copy", destinations='["thailand"]', zones='["home"]'),
            "voice_out_copy ties with voice_out",
        ),
        (
            "[timings.songkran]\ndates = [2027-04-13]\n"
            + tariff("songkran", destinations='["thailand"]', zones='["home"]', timing='"songkran"'),
            "songkran ties with voice_out_night",  # 2027-04-13 at 23:00 is both
        ),
        (tariff("x", zones='["europe"]'), "tariffs[11].zones: unknown zone europe"),
        (tariff("x", destinations='["mars"]'), "tariffs[11].destinations: unknown destination mars"),
        (tariff("x", timing='"teatime"'), "tariffs[11].timing: unknown timing teatime"),
        (tariff("voice_out", zones='["roaming"]', service_ids="[7]"), "tariffs[11].name: voice_out is also tariffs[2]"),
        (tariff("bytes", rating_group=1, service_ids="[7]"), "tariffs[11].unit: rating group 1 is BYTES in data"),
        ('[zones.home]\nplmns = ["23415"]', "zones.home: home and roaming are built in"),
        ('[zones.eu]\nplmns = ["23415"]\n[zones.uk]\nplmns = ["23415"]', "zones.uk: PLMN 23415 is also in zones.eu"),
        ('[timings.half]\nstart = "10:00"', "timings.half: start and end go together"),
        ('[timings.empty]\nstart = "10:00"\nend = "10:00"', "timings.empty.end: equal to start"),
        ('[timings.late]\nstart = "24:00"\nend = "01:00"', "timings.late.start: 24:00 is only an end"),
        ('[timings.twice]\nweekdays = ["sat", "sat"]', "timings.twice.weekdays: a day appears twice"),
        ("[destinations.none]\nprefixes = []", "destinations.none: needs prefixes"),
    ],
)
def test_rating_mistakes_are_refused_naming_the_field(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse(with_extra(extra))
    assert message in error.value.message


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ('time_zone = "Asia/Bangkok"', 'time_zone = "Mars/Olympus"'),
        ('home_plmns = ["52001"', 'home_plmns = ["5200x"'),
        ('prefixes = ["66"]', 'prefixes = ["+66"]'),
    ],
)
def test_malformed_values_are_refused(replace: str, message: str) -> None:
    assert replace in SHIPPED
    with pytest.raises(ConfigError) as error:
        parse(SHIPPED.replace(replace, message, 1))
    assert "time_zone" in error.value.message or "plmns" in error.value.message or "prefixes" in error.value.message


def test_timings_that_never_meet_do_not_tie() -> None:
    day = '[timings.day]\nstart = "07:00"\nend = "22:00"\n'
    settings = parse(
        with_extra(day + tariff("voice_day", destinations='["thailand"]', zones='["home"]', timing='"day"'))
    )
    assert [t.name for t in settings.plans["standard"].tariffs][-1] == "voice_day"


def test_overlap_of_timings_is_exact() -> None:
    friday_night = Timing(weekdays=["fri"], start="22:00", end="07:00")
    assert timings_overlap(friday_night, Timing(weekdays=["sat"], start="06:00", end="08:00"))  # Sat 06:00 is Fri's
    assert not timings_overlap(friday_night, Timing(weekdays=["sat"], start="07:00", end="08:00"))
    assert not timings_overlap(friday_night, Timing(weekdays=["sun"]))
    holiday = Timing(dates=[datetime(2027, 4, 13).date()])  # a Tuesday
    assert timings_overlap(holiday, Timing(weekdays=["tue"], start="12:00", end="13:00"))
    assert not timings_overlap(holiday, Timing(weekdays=["thu"]))


def test_prefix_files_load_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "prefixes").mkdir()
    (tmp_path / "prefixes" / "asia.csv").write_text("# prefix,name\n65,Singapore\n\n+60,Malaysia\n852 , Hong Kong\n")
    config = tmp_path / "creditd.toml"
    config.write_text(with_extra('[destinations.asia]\nprefixes = ["62"]\nprefixes_file = "prefixes/asia.csv"'))
    settings = load_settings(config)
    assert settings.destinations["asia"].prefixes == ["62", "65", "60", "852"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("65\nsixty\n", "asia.csv:2: prefix 'sixty'"),
        ("1234567890123456\n", "asia.csv:1: prefix"),
        ("66\n", "destinations.asia: prefix 66 is also in destinations.thailand"),
    ],
)
def test_bad_prefix_files_are_refused_naming_the_line(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "asia.csv").write_text(content)
    config = tmp_path / "creditd.toml"
    config.write_text(with_extra('[destinations.asia]\nprefixes_file = "asia.csv"'))
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert message in error.value.message


def test_a_missing_prefix_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "creditd.toml"
    config.write_text(with_extra('[destinations.asia]\nprefixes_file = "nowhere.csv"'))
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    assert "nowhere.csv: cannot read" in error.value.message


def run_check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "creditd", "check-config", str(path)], capture_output=True, text=True, timeout=60
    )


def test_check_config_reports_the_rating_tables_or_the_mistake(tmp_path: Path) -> None:
    (tmp_path / "world.csv").write_text("".join(f"{prefix},country {prefix}\n" for prefix in range(800, 1800)))
    config = tmp_path / "creditd.toml"
    config.write_text(with_extra('[destinations.world]\nprefixes_file = "world.csv"'))
    result = run_check_config(config)
    assert result.returncode == 0, result.stderr
    assert "3 destination(s) with 1010 prefix(es), 0 zone(s), 1 timing(s)" in result.stdout

    config.write_text(with_extra(tariff("x", timing='"lunch"')))
    result = run_check_config(config)
    assert result.returncode == 2 and "tariffs[11].timing: unknown timing lunch" in result.stderr


@pytest.mark.parametrize("time_zone", ["Europe/London", "America/New_York", "Australia/Sydney", "Asia/Bangkok"])
def test_utc_offsets_agree_with_zoneinfo(time_zone: str) -> None:
    zone = ZoneInfo(time_zone)
    offsets = utc_offsets(time_zone)
    assert [start for start, _ in offsets] == sorted(start for start, _ in offsets)
    for start_ms, offset_s in offsets:
        for instant_ms in (start_ms, start_ms + 3_600_000):
            local = datetime.fromtimestamp(instant_ms / 1000, UTC).astimezone(zone)
            assert local.utcoffset().total_seconds() == offset_s  # type: ignore[union-attr]
        before = datetime.fromtimestamp((start_ms - 1000) / 1000, UTC).astimezone(zone)
        if start_ms != offsets[0][0]:
            assert before.utcoffset().total_seconds() != offset_s  # type: ignore[union-attr]
