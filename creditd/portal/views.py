"""What the portal's pages show, worked out from creditd's answers: status in words, money and dates
in the subscriber's language and time zone, what is left of each bundle, data per day. Every word is
the subscriber's: bundles, destinations and services by their display names (names.py), ledger
kinds and units in words.py; ledger entries that move no money (status, plan, credit limit
changes) are creditd's bookkeeping and are not shown."""

from __future__ import annotations

import secrets
from datetime import datetime

import msgspec

from creditd.display_names import LanguageNames
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
    name: str
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


def quantity(unit: int, amount: int, language: str) -> str:
    words = WORDS[language]
    if unit == pb.BYTES:
        if amount >= 1_000_000_000:
            return words["quantity_gb"].format(amount=f"{amount / 1e9:.1f}")
        return words["quantity_mb"].format(amount=f"{amount / 1e6:.0f}")
    if unit == pb.SECONDS:
        if amount >= 60:
            return words["quantity_min"].format(amount=amount // 60)
        return words["quantity_s"].format(amount=amount)
    return words["quantity_sms"].format(amount=amount)


def unit_word(unit: int, language: str) -> str:
    return WORDS[language].get(f"unit_{pb.Unit.Name(pb.Unit.ValueType(unit))}", "")


def bundle_name(bundle_id: str, names: LanguageNames, language: str, unit: int = 0, amount: int = 0) -> str:
    """A bundle's display name; without one, what it is (its unit and size), never its id."""
    if bundle_id in names.bundles:
        return names.bundles[bundle_id]
    if unit:
        return f"{unit_word(unit, language)} {quantity(unit, amount, language)}"
    return WORDS[language]["bundles"]


def service_name(rating_group: int, unit: int, names: LanguageNames, language: str) -> str:
    return names.services.get(str(rating_group)) or unit_word(unit, language)


def time_zone_of(card: pb.Account) -> str:
    return card.preferences.time_zone or "UTC"


def restore_amount(card: pb.Account) -> int:
    """What to top up, at least, to bring available money above zero, rounded up to a whole unit."""
    debt = max(0, -card.available)
    return (debt // 100 + 1) * 100


def overview(card: pb.Account, language: str, names: LanguageNames) -> OverviewView:
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
        return money(amount, card.currency, language) if unit == pb.MONEY else quantity(unit, amount, language)

    bundles = [
        BundleView(
            name=words["bonus"]
            if bucket.unit == pb.MONEY
            else bundle_name(bundle_of(bucket.bucket_id), names, language, bucket.unit, bucket.amount),
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


def usage(card: pb.Account, summary: pb.UsageSummary, language: str, names: LanguageNames) -> UsageView:
    zone = time_zone_of(card)
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
            what=service_name(item.rating_group, item.unit, names, language),
            to=names.destinations.get(item.destination, "") or "-",
            quantity=quantity(item.unit, item.units, language),
            cost=money(item.charged, card.currency, language),
        )
        for item in summary.recent
    ]
    return UsageView(groups=groups(card, summary, language, names), days=day_views, recent=recent)


def groups(card: pb.Account, summary: pb.UsageSummary, language: str, names: LanguageNames) -> list[GroupView]:
    totals: dict[tuple[int, int], list[int]] = {}
    for total in summary.days:
        units_and_cost = totals.setdefault((total.rating_group, int(total.unit)), [0, 0])
        units_and_cost[0] += total.units
        units_and_cost[1] += total.charged
    largest = max((cost for _, cost in totals.values()), default=0) or 1
    return [
        GroupView(
            name=service_name(rating_group, unit, names, language),
            used=quantity(unit, used, language),
            cost=money(cost, card.currency, language),
            percent=round(100 * cost / largest),
        )
        for (rating_group, unit), (used, cost) in sorted(totals.items())
    ]


def kind_text(entry: pb.LedgerEntry, names: LanguageNames, language: str) -> str:
    words = WORDS[language]
    if entry.kind == "purchase":  # reference: 'bundle <bundle_id> <idempotency key>'
        bundle_id = entry.reference.split(" ")[1] if entry.reference.startswith("bundle ") else ""
        return words["kind_purchase"].format(bundle=bundle_name(bundle_id, names, language))
    return words.get(f"kind_{entry.kind}", words["kind_other"])


def history(
    card: pb.Account, entries: list[pb.LedgerEntry], language: str, page: int, names: LanguageNames
) -> HistoryView:
    zone = time_zone_of(card)
    rows = [
        LedgerRow(
            when=local_time(entry.time_ms, zone, language, "short"),
            kind=kind_text(entry, names, language),
            amount=money(entry.amount, card.currency, language),
            balance_after=money(entry.balance_after, card.currency, language),
        )
        for entry in entries
        if entry.amount != 0
    ]
    older = entries[-1].seq if len(entries) == page and entries[-1].seq > 1 else 0
    return HistoryView(rows=rows, older_before=older)


def catalogue(bundles: pb.BundleCatalogue, language: str, names: LanguageNames) -> list[CatalogueView]:
    return [
        CatalogueView(
            bundle_id=b.bundle_id,
            name=bundle_name(b.bundle_id, names, language, b.unit, b.amount),
            price=money(b.price, bundles.currency, language),
            size=quantity(b.unit, b.amount, language),
            validity=validity(b.validity_s, language),
            recommended=b.recommended,
        )
        for b in bundles.bundles
    ]


def validity(validity_s: int, language: str) -> str:
    words, days = WORDS[language], validity_s // 86400
    if not validity_s:
        return words["never_expires"]
    return words["valid_one_day"] if days == 1 else words["valid_days"].format(days=days)


def amount_text(amount_minor: int, card: pb.Account, language: str) -> str:
    return money(amount_minor, card.currency, language)
