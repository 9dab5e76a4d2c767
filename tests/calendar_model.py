"""Billing cycles, as lua/lib/calendar.lua counts them: a cycle starts at 00:00 UTC on the account's
billing_cycle_day (1..28) and is numbered year * 12 + month - 1 of its start."""

from __future__ import annotations

from datetime import UTC, datetime

DAY_MS = 86_400_000


def billing_cycle_of(now_ms: int, billing_cycle_day: int) -> int:
    moment = datetime.fromtimestamp((now_ms // DAY_MS) * DAY_MS / 1000, UTC)
    index = moment.year * 12 + moment.month - 1
    return index - 1 if moment.day < billing_cycle_day else index


def cycle_start_ms(cycle: int, billing_cycle_day: int) -> int:
    year, month_index = divmod(cycle, 12)
    return int(datetime(year, month_index + 1, billing_cycle_day, tzinfo=UTC).timestamp() * 1000)
