"""creditd/phone_numbers.py: every usual way of writing a subscriber's number (national with or without
separators, international with '+' or '00', bare E.164 digits) gives the same E.164 digits in the
deployment's region; what is not a possible number gives None (e164_digits) or the text itself
(account_id_of); a region of its own (Germany) for a national form; and the shipped config's region is
Thailand's."""

from __future__ import annotations

import pytest

from creditd.config.settings import load_settings
from creditd.phone_numbers import account_id_of, e164_digits
from creditd.resources import default_config_path

THAI_FORMS = [
    "081-234-5678",
    "0812345678",
    "081 234 5678",
    "(081) 234.5678",
    "+66 81 234 5678",
    "+66812345678",
    "0066812345678",
    "66812345678",
    " 081\u00a0234\u20115678 ",
]


@pytest.mark.parametrize("text", THAI_FORMS)
def test_every_thai_form_is_one_number(text: str) -> None:
    assert e164_digits(text, "TH") == "66812345678"
    assert account_id_of(text, "TH") == "66812345678"


@pytest.mark.parametrize("text", ["", "abc", "1000", "+", "08-12", "0" * 30, "081234567890123456789"])
def test_what_is_not_a_number_is_not_one(text: str) -> None:
    assert e164_digits(text, "TH") is None


def test_an_id_that_is_no_number_is_kept_as_written() -> None:
    assert account_id_of("  acct-7 ", "TH") == "acct-7"
    assert account_id_of("1000", "TH") == "1000"


def test_national_forms_follow_the_region() -> None:
    assert e164_digits("01701234567", "DE") == "491701234567"
    assert e164_digits("+491701234567", "TH") == "491701234567"
    assert e164_digits("0812345678", "") is None  # no region: only international forms


def test_the_shipped_region_is_thailand() -> None:
    assert load_settings(default_config_path()).numbers.region == "TH"
