"""What the portal's pages show, worked out from creditd's answers: status in words, money and dates
in the subscriber's language and time zone, what is left of each bundle, data per day."""

from __future__ import annotations

import secrets
from datetime import datetime

import msgspec

from creditd.formatting import bundle_of, local_date, local_time, money
from creditd.portal.words import WORDS
from creditd.v1 import creditd_pb2 as pb

DAYS_SHOWN = 30
SUSPENDED = (pb.ONE_WAY_SUSPENDED, pb.TWO_WAY_SUSPENDED)


class BundleView(msgspec.Struct, frozen=True):
    name: str
    left: str
    percent_left: int
    expires: str


class OverviewView(msgspec.Struct, frozen=True):
    status: str
    suspended: bool
    restore: str
    next_step: str
    balance: str
    credit_limit: str
    bundles: list[BundleView]
    # A shared wallet's member: how much of its balance came from the group ('' for none).
    group_share: str = ""


class DayView(msgspec.Struct, frozen=True):
    day: str
    megabytes: float
    percent: int


class RecentView(msgspec.Struct, frozen=True):
    when: str
    what: str
    to: str
    quantity: str
    cost: str


class GroupView(msgspec.Struct, frozen=True):
    """One rating group's 30 days: how much, what it cost, its share of the largest cost."""

    name: str
    used: str
    cost: str
    percent: int


class UsageView(msgspec.Struct, frozen=True):
    groups: list[GroupView]
    days: list[DayView]
    recent: list[RecentView]


class LedgerRow(msgspec.Struct, frozen=True):
    when: str
    kind: str
    amount: str
    balance_after: str


class HistoryView(msgspec.Struct, frozen=True):
    rows: list[LedgerRow]
    older_before: int  # 0: no older page


class CatalogueView(msgspec.Struct, frozen=True):
    bundle_id: str
    price: str
    size: str
    validity: str
    recommended: bool


class LoanOfferView(msgspec.Struct, frozen=True):
    offer_id: str
    amount: str
    owed: str
    # One idempotency key per offer per page: a double click borrows once.
    key: str


def loan_offers(catalogue: pb.LoanOfferCatalogue, card: pb.Account, language: str) -> list[LoanOfferView]:
    return [
        LoanOfferView(
            offer.offer_id,
            amount_text(offer.amount, card, language),
            amount_text(offer.amount + offer.fee, card, language),
            secrets.token_hex(16),
        )
        for offer in catalogue.offers
    ]


def quantity(unit: int, amount: int) -> str:
    if unit == pb.BYTES:
        return f"{amount / 1e9:.1f} GB" if amount >= 1_000_000_000 else f"{amount / 1e6:.0f} MB"
    if unit == pb.SECONDS:
        return f"{amount // 60} min" if amount >= 60 else f"{amount} s"
    return f"{amount} SMS"


def time_zone_of(card: pb.Account) -> str:
    return card.preferences.time_zone or "UTC"


def restore_amount(card: pb.Account) -> int:
    """What to top up, at least, to bring available money above zero, rounded up to a whole unit."""
    debt = max(0, -card.available)
    return (debt // 100 + 1) * 100


def overview(card: pb.Account, language: str) -> OverviewView:
    words, zone = WORDS[language], time_zone_of(card)
    status_name = pb.AccountStatus.Name(card.status)
    since = local_date(card.status_since_ms, zone, language) if card.status_since_ms else ""
    suspended = card.status in SUSPENDED
    restore = words["restore"].format(amount=money(restore_amount(card), card.currency, language)) if suspended else ""
    next_step = ""
    if card.next_status and card.next_status_at_ms:
        next_status = words.get(pb.AccountStatus.Name(card.next_status), "").format(since="").strip()
        next_step = words["next_step"].format(
            status=next_status, date=local_date(card.next_status_at_ms, zone, language)
        )

    def size(unit: int, amount: int) -> str:
        return money(amount, card.currency, language) if unit == pb.MONEY else quantity(unit, amount)

    bundles = [
        BundleView(
            name=words["bonus"] if bucket.unit == pb.MONEY else bundle_of(bucket.bucket_id),
            left=words["left"].format(
                left=size(bucket.unit, bucket.remaining), amount=size(bucket.unit, bucket.amount or 1)
            ),
            percent_left=int(100 * bucket.remaining / bucket.amount) if bucket.amount else 0,
            expires=words["expires"].format(date=local_date(bucket.expires_at_ms, zone, language))
            if bucket.expires_at_ms
            else words["never_expires"],
        )
        for bucket in card.buckets
    ]
    return OverviewView(
        status=words.get(status_name, status_name).format(since=since),
        suspended=suspended,
        restore=restore,
        next_step=next_step,
        balance=money(card.balance, card.currency, language),
        credit_limit=money(card.credit_limit, card.currency, language),
        bundles=bundles,
        group_share=words["group_share"].format(
            group=card.group_id, amount=money(card.group_holding, card.currency, language)
        )
        if card.group_id
        else "",
    )


def usage(card: pb.Account, summary: pb.UsageSummary, language: str) -> UsageView:
    words, zone = WORDS[language], time_zone_of(card)
    data: dict[str, int] = {}
    for total in summary.days:
        if total.unit == pb.BYTES:
            data[total.day] = data.get(total.day, 0) + total.units
    days = sorted(data)[-DAYS_SHOWN:]
    largest = max((data[day] for day in days), default=0) or 1
    day_views = [
        DayView(
            day=local_date(int(datetime.strptime(day, "%Y%m%d").timestamp() * 1000) + 43_200_000, "UTC", language),
            megabytes=round(data[day] / 1e6, 1),
            percent=round(100 * data[day] / largest),
        )
        for day in days
    ]
    recent = [
        RecentView(
            when=local_time(item.time_ms, zone, language, "short"),
            what=words.get(f"unit_{pb.Unit.Name(item.unit)}", ""),
            to=item.destination or "-",
            quantity=quantity(item.unit, item.units),
            cost=money(item.charged, card.currency, language),
        )
        for item in summary.recent
    ]
    return UsageView(groups=groups(card, summary, language), days=day_views, recent=recent)


def groups(card: pb.Account, summary: pb.UsageSummary, language: str) -> list[GroupView]:
    words = WORDS[language]
    totals: dict[tuple[int, int], list[int]] = {}
    for total in summary.days:
        units_and_cost = totals.setdefault((total.rating_group, int(total.unit)), [0, 0])
        units_and_cost[0] += total.units
        units_and_cost[1] += total.charged
    largest = max((cost for _, cost in totals.values()), default=0) or 1
    return [
        GroupView(
            name=f"{words.get(f'unit_{pb.Unit.Name(pb.Unit.ValueType(unit))}', '')} ({rating_group})",
            used=quantity(unit, used),
            cost=money(cost, card.currency, language),
            percent=round(100 * cost / largest),
        )
        for (rating_group, unit), (used, cost) in sorted(totals.items())
    ]


def history(card: pb.Account, entries: list[pb.LedgerEntry], language: str, page: int) -> HistoryView:
    zone = time_zone_of(card)
    rows = [
        LedgerRow(
            when=local_time(entry.time_ms, zone, language, "short"),
            kind=entry.kind,
            amount=money(entry.amount, card.currency, language),
            balance_after=money(entry.balance_after, card.currency, language),
        )
        for entry in entries
    ]
    older = entries[-1].seq if len(entries) == page and entries[-1].seq > 1 else 0
    return HistoryView(rows=rows, older_before=older)


def catalogue(bundles: pb.BundleCatalogue, language: str) -> list[CatalogueView]:
    words = WORDS[language]
    return [
        CatalogueView(
            bundle_id=b.bundle_id,
            price=money(b.price, bundles.currency, language),
            size=quantity(b.unit, b.amount),
            validity=words["valid_days"].format(days=b.validity_s // 86400) if b.validity_s else words["never_expires"],
            recommended=b.recommended,
        )
        for b in bundles.bundles
    ]


def amount_text(amount_minor: int, card: pb.Account, language: str) -> str:
    return money(amount_minor, card.currency, language)
