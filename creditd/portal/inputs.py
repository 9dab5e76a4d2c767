"""Every value a visitor sends the portal, parsed strictly before anything is asked of creditd: ASCII
digits only where a number is meant (str.isdigit also accepts '²' and other digits that int() refuses
or reads otherwise), numbers within what creditd stores, text within a length. A value that does not
parse is BadInput naming the field, which the portal answers 400 in the subscriber's language."""

from __future__ import annotations

from creditd.contract import MAX_EXACT_INTEGER
from creditd.phone_numbers import account_id_of

ASCII_DIGITS = frozenset("0123456789")
MAX_TEXT = 128
MAX_PHONE_DIGITS = 20
MAX_CHANNELS = 8
# What people type around the digits of a phone number.
PHONE_DECORATION = frozenset(" +-().")


class BadInput(Exception):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def is_ascii_number(value: str) -> bool:
    return bool(value) and all(ch in ASCII_DIGITS for ch in value)


def whole_number(value: str, field: str, default: int = 0) -> int:
    """A whole number in ASCII digits, 0..MAX_EXACT_INTEGER; an absent or empty value is default."""
    if value == "":
        return default
    if not is_ascii_number(value) or len(value) > len(str(MAX_EXACT_INTEGER)) or int(value) > MAX_EXACT_INTEGER:
        raise BadInput(field)
    return int(value)


def text(value: str, field: str, max_length: int = MAX_TEXT) -> str:
    if len(value) > max_length or not value.isprintable():
        raise BadInput(field)
    return value


def phone(value: str, region: str) -> str:
    """The account id of a phone number as people type it (081-234-5678, 0812345678, +66 81 234 5678,
    66812345678), read in the deployment's region (creditd/phone_numbers.py): E.164 digits."""
    digits = "".join(ch for ch in value if ch not in PHONE_DECORATION)
    if not is_ascii_number(digits) or len(digits) > MAX_PHONE_DIGITS:
        raise BadInput("phone")
    account_id = account_id_of(value, region)
    if not is_ascii_number(account_id) or len(account_id) > MAX_PHONE_DIGITS:
        raise BadInput("phone")
    return account_id


def sign_in_code(value: str) -> str:
    code = value.strip()
    if len(code) != 6 or not is_ascii_number(code):
        raise BadInput("code")
    return code


def channels(values: list[str]) -> list[str]:
    if len(values) > MAX_CHANNELS:
        raise BadInput("channels")
    return [text(value, "channels", 16) for value in values]
