"""Money and dates for people, in their language (Babel): the notifier's notices and the portal's
pages format them alike."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency


def money(amount_minor: int, currency: str, language: str, minor_digits: int = 2) -> str:
    return str(format_currency(amount_minor / 10**minor_digits, currency, locale=language))


def local_time(instant_ms: int, time_zone: str, language: str, length: str = "medium") -> str:
    moment = datetime.fromtimestamp(instant_ms / 1000, UTC)
    return str(format_datetime(moment, length, tzinfo=ZoneInfo(time_zone), locale=language))


def local_date(instant_ms: int, time_zone: str, language: str) -> str:
    moment = datetime.fromtimestamp(instant_ms / 1000, UTC).astimezone(ZoneInfo(time_zone))
    return str(format_date(moment.date(), "medium", locale=language))


BOUGHT_BUCKET = re.compile(r"^(.+)\.\d+(?:\.r\d+)?$")


def bundle_of(bucket_id: str) -> str:
    """The bundle a bucket was bought from: purchase_bundle names it '<bundle_id>.<ledger seq>', a
    rollover (lib/lifecycle.lua) adds '.r<n>'; any other id is its own name."""
    match = BOUGHT_BUCKET.match(bucket_id)
    return match.group(1) if match else bucket_id
