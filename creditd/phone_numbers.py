"""Subscriber numbers as people and networks write them, turned into the one id creditd keys accounts
by: E.164 digits without '+' ('66812345678'). Parsed with phonenumbers (Google's libphonenumber data)
in the deployment's region (`[numbers] region`, ISO 3166 alpha-2), so that the national forms people
type ('081-234-5678', '0812345678'), the international ones ('+66 81 234 5678', '00 66 ...') and bare
E.164 digits all name the same account. Used by every edge that takes a number from a person or a
network element: the portal's sign-in, the care console's search, the CLI, the Diameter and Nchf
identities."""

from __future__ import annotations

import re

import phonenumbers

# What people put between digits: spaces (any kind), dashes, dots, slashes and parentheses.
SEPARATORS = re.compile(r"[\s\-./()\u00a0\u2010-\u2015]")
DIGITS = re.compile(r"\+?[0-9]{1,20}")
MAX_TEXT_LENGTH = 64


def e164_digits(text: str, region: str) -> str | None:
    """The E.164 digits of a possible phone number written in any usual way; None when the text is
    not one (letters, too short or too long for its country, empty)."""
    compact = SEPARATORS.sub("", text[:MAX_TEXT_LENGTH])
    if not DIGITS.fullmatch(compact):
        return None
    if compact.startswith("00"):  # the international prefix of most countries
        compact = "+" + compact[2:]
    try:
        number = phonenumbers.parse(compact, None if compact.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).removeprefix("+")


def account_id_of(text: str, region: str) -> str:
    """The account id a person or a network means by `text`: its E.164 digits when it is a phone
    number, else the text itself without its surrounding space (an account id need not be a number;
    the caller checks the id's own rules)."""
    return e164_digits(text, region) or text.strip()
