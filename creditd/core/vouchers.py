"""Top-up vouchers: 16-digit codes whose last digit is a Luhn check digit (a mistyped digit or two
swapped neighbours are caught before anything is asked of Redis), stored only as the SHA-256 of the
code (create_voucher), redeemed once (claim_voucher binds the voucher to the first account, then a
top-up keyed by the voucher pays it, so a repeated redemption pays once)."""

from __future__ import annotations

import hashlib
import secrets

from creditd.errors import InvalidArgument

CODE_DIGITS = 16
GROUP = 4


def luhn_digit(digits: str) -> str:
    """The check digit to append to digits."""
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def new_code() -> str:
    body = f"{secrets.randbelow(10 ** (CODE_DIGITS - 1)):0{CODE_DIGITS - 1}d}"
    return body + luhn_digit(body)


def printed(code: str) -> str:
    """In groups of four, as printed on a card: 1234 5678 9012 3456."""
    return " ".join(code[start : start + GROUP] for start in range(0, len(code), GROUP))


def normalized(typed: str) -> str:
    """The code's digits, without the spaces and dashes people type; InvalidArgument naming `code`."""
    code = "".join(ch for ch in typed if ch not in " -")
    if len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        raise InvalidArgument(f"code: a voucher code has {CODE_DIGITS} digits")
    if luhn_digit(code[:-1]) != code[-1]:
        raise InvalidArgument("code: not a voucher code (check digit); please check the digits")
    return code


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
