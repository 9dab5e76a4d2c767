"""The [payments] table is checked when the config is read: a malformed agent id, a short secret, a
minimum above the maximum, a maximum above limits.max_amount_minor, an unknown time zone and a
misspelt option are each refused with a ConfigError naming the field (no server needed: parsing)."""

from __future__ import annotations

import tomllib

import pytest

from creditd.config.settings import parse_settings
from creditd.errors import ConfigError
from creditd.resources import default_config_path

SECRET = "a-secret-of-16-chars"


def _parse(extra: str) -> object:
    document = tomllib.loads(default_config_path().read_text() + "\n" + extra)
    return parse_settings(document, "test")


def test_a_valid_payments_table_is_read() -> None:
    settings = _parse(f'[payments]\ncancel_window_s = 60\n[payments.agents.shop_1]\nsecret = "{SECRET}"\n')
    assert settings.payments.agents["shop_1"].secret == SECRET  # type: ignore[attr-defined]
    assert settings.payments.cancel_window_s == 60  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (f'[payments.agents."shop 1"]\nsecret = "{SECRET}"\n', "payments.agents.shop 1"),
        (
            '[payments.agents.shop1]\nsecret = "short"\n',
            "payments.agents.shop1: Expected `str` of length >= 16 - at `$.secret`",
        ),
        (
            f'[payments.agents.shop1]\nsecret = "{SECRET}"\nmin_amount_minor = 500\nmax_amount_minor = 100\n',
            "payments.agents.shop1.min_amount_minor",
        ),
        (
            f'[payments.agents.shop1]\nsecret = "{SECRET}"\nmax_amount_minor = 1_000_000_000_001\n',
            "payments.agents.shop1.max_amount_minor",
        ),
        ('[payments]\ntime_zone = "Mars/Olympus"\n', "payments.time_zone"),
        ('[payments.promptpay]\nbiller_id = "12"\n', "payments.promptpay.biller_id"),
        ('[payments.bank]\nreference_prefix = "TOPUP"\n', "payments.bank.reference_prefix"),
        ("[payments]\ncancel_windows = 5\n", "cancel_windows"),
    ],
)
def test_a_bad_payments_setting_is_named(extra: str, named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _parse(extra)
    assert named in raised.value.message


def test_a_cancel_window_longer_than_the_top_up_keys_memory_is_refused() -> None:
    text = default_config_path().read_text().replace("topup_key_retention_s = 604800", "topup_key_retention_s = 3600")
    document = tomllib.loads(text + "\n[payments]\ncancel_window_s = 7200\n")
    with pytest.raises(ConfigError, match="payments.cancel_window_s: must not exceed limits.topup_key_retention_s"):
        parse_settings(document, "test")
