"""The monthly statement of one billing cycle (cycles start at 00:00 UTC on the account's billing
cycle day): opening and closing balance, top-ups, charges (split by service, destination and zone
from the usage summary), bundles bought, fees and every other money movement, from the ledger.

The opening balance is the first entry's balance before it (its balance_after less its amount), so
a statement needs no entry from before the cycle and survives ledger trimming; the closing balance
is the last entry's balance_after. Opening plus every movement of the cycle is the closing balance:
`reconciles` says so, and tests/test_portal_statement.py sums the figures against the ledger.
The PDF is the same statement rendered by WeasyPrint (statement_document.html), with the Thai
and Chinese fonts the machine has (Debian's fonts-thai-tlwg, fonts-noto-cjk) embedded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec

from creditd.display_names import LanguageNames
from creditd.formatting import local_date, local_time, money
from creditd.portal.views import kind_text, quantity, service_name, time_zone_of
from creditd.portal.words import WORDS
from creditd.v1 import creditd_pb2 as pb

MAX_CYCLES_SHOWN = 12
LEDGER_PAGE = 200
MAX_LEDGER_PAGES = 25  # 5000 entries: beyond the ledger's own retention (limits.max_ledger_entries)
# Ledger kinds with their own part of the statement; every other kind is listed under "other".
OWN_PARTS = frozenset({"opening", "topup", "charge", "purchase", "fee"})


class Line(msgspec.Struct, frozen=True):
    what: str
    detail: str
    amount: str


class StatementView(msgspec.Struct, frozen=True):
    cycle: str  # YYYYMMDD of its first day, for links
    period: str
    opening: str
    closing: str
    top_ups: str
    charges: str
    bundles: str
    fees: str
    other: str
    top_up_lines: list[Line]
    service_lines: list[Line]
    bundle_lines: list[Line]
    other_lines: list[Line]
    # The raw sums, minor units: opening, top-ups, charges, bundles, fees, other, closing.
    totals: dict[str, int]
    reconciles: bool


def cycle_start(instant_ms: int, cycle_day: int) -> datetime:
    moment = datetime.fromtimestamp(instant_ms / 1000, UTC)
    start = moment.replace(day=cycle_day, hour=0, minute=0, second=0, microsecond=0)
    return start if start <= moment else months_before(start, 1)


def months_before(start: datetime, months: int) -> datetime:
    month_index = start.year * 12 + start.month - 1 - months
    return start.replace(year=month_index // 12, month=month_index % 12 + 1)


def cycles(card: pb.Account, newest_ms: int) -> list[datetime]:
    """The account's billing cycles, newest first (the one holding newest_ms), at most MAX_CYCLES_SHOWN."""
    day = card.billing_cycle_day or 1
    newest = cycle_start(newest_ms, day)
    oldest = cycle_start(card.created_at_ms or newest_ms, day)
    found: list[datetime] = []
    while len(found) < MAX_CYCLES_SHOWN and months_before(newest, len(found)) >= oldest:
        found.append(months_before(newest, len(found)))
    return found or [newest]


async def entries_between(
    page_of: Callable[[int], Awaitable[list[pb.LedgerEntry]]], start_ms: int, end_ms: int
) -> list[pb.LedgerEntry]:
    """The ledger entries of [start_ms, end_ms), oldest first; page_of(before_seq) reads a page."""
    found: list[pb.LedgerEntry] = []
    before = 0
    for _ in range(MAX_LEDGER_PAGES):
        page = await page_of(before)
        found += [entry for entry in page if start_ms <= entry.time_ms < end_ms]
        if len(page) < LEDGER_PAGE or page[-1].time_ms < start_ms or page[-1].seq <= 1:
            break
        before = page[-1].seq
    return sorted(found, key=lambda entry: entry.seq)


def statement(
    card: pb.Account,
    start: datetime,
    entries: list[pb.LedgerEntry],
    usage: pb.UsageSummary,
    language: str,
    names: LanguageNames,
) -> StatementView:
    words, zone = WORDS[language], time_zone_of(card)
    end = months_before(start, -1)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    opening = entries[0].balance_after - entries[0].amount if entries else card.balance
    closing = entries[-1].balance_after if entries else card.balance
    sums = {kind: 0 for kind in ("opening", "topup", "charge", "purchase", "fee", "other")}
    for entry in entries:
        sums[entry.kind if entry.kind in OWN_PARTS else "other"] += entry.amount

    def text(amount: int) -> str:
        return money(amount, card.currency, language)

    def line(entry: pb.LedgerEntry, detail: str = "") -> Line:
        return Line(local_time(entry.time_ms, zone, language, "short"), detail, text(entry.amount))

    totals = {
        "opening": opening,
        "top_ups": sums["topup"] + sums["opening"],
        "charges": sums["charge"],
        "bundles": sums["purchase"],
        "fees": sums["fee"],
        "other": sums["other"],
        "closing": closing,
    }
    movements = sum(amount for key, amount in totals.items() if key not in ("opening", "closing"))
    return StatementView(
        cycle=start.strftime("%Y%m%d"),
        period=words["statement_period"].format(
            start=local_date(start_ms, "UTC", language), end=local_date(end_ms - 1, "UTC", language)
        ),
        opening=text(opening),
        closing=text(closing),
        top_ups=text(totals["top_ups"]),
        charges=text(totals["charges"]),
        bundles=text(totals["bundles"]),
        fees=text(totals["fees"]),
        other=text(totals["other"]),
        top_up_lines=[line(e, kind_text(e, names, language)) for e in entries if e.kind in ("topup", "opening")],
        service_lines=service_lines(card, usage, start, end, language, names),
        bundle_lines=[line(e, kind_text(e, names, language)) for e in entries if e.kind == "purchase"],
        other_lines=[line(e, kind_text(e, names, language)) for e in entries if e.kind not in OWN_PARTS and e.amount],
        totals=totals,
        reconciles=opening + movements == closing,
    )


def service_lines(
    card: pb.Account, usage: pb.UsageSummary, start: datetime, end: datetime, language: str, names: LanguageNames
) -> list[Line]:
    """What each service cost in the cycle per destination, at home and roaming apart (the usage
    summary's days). A destination is shown by its display name; one without a name in this
    language (a plan added without its names) is folded into its service's line, never shown by id."""
    first, last = start.strftime("%Y%m%d"), end.strftime("%Y%m%d")
    totals: dict[tuple[int, int, str, bool], list[int]] = {}
    for day in usage.days:
        if first <= day.day < last:
            destination = names.destinations.get(day.destination, "")
            roaming = day.zone not in ("", "home")
            units_and_cost = totals.setdefault((day.rating_group, int(day.unit), destination, roaming), [0, 0])
            units_and_cost[0] += day.units
            units_and_cost[1] += day.charged
    words = WORDS[language]
    return [
        Line(
            " · ".join(
                [service_name(rating_group, unit, names, language)]
                + ([destination] if destination else [])
                + ([words["zone_roaming"]] if roaming else [])
            ),
            quantity(unit, used, language),
            money(-cost, card.currency, language),
        )
        for (rating_group, unit, destination, roaming), (used, cost) in sorted(totals.items())
    ]
