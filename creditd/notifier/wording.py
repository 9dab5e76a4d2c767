"""What a notice says: the fields its template fills (templates.NoticeContext) from the event, the
subscriber's card and plan, in their language and currency."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from creditd.config.plans import Plan
from creditd.core.notices import NoticeEvent as Event
from creditd.display_names import LanguageNames, Names
from creditd.formatting import bundle_of, local_time, money
from creditd.notifier.rules import STATUS_OF_NOTICE
from creditd.notifier.templates import NoticeContext, status_words
from creditd.store.replies import AccountRecord


def notice_context(
    event: Event, card: AccountRecord, plan: Plan | None, names: Names, sign_in_code: Callable[[Event], str]
) -> NoticeContext:
    """`sign_in_code` opens the code sealed in a sign-in notice (Notifier.sign_in_code)."""
    language, currency = card.preferences.language, card.currency
    words = event.detail.split(" ")
    # What the event left, not what is true now (the card is read at delivery, maybe much later).
    balance = card.balance if event.balance is None else event.balance
    available = card.available if event.available is None else event.available
    fields: dict[str, object] = {
        "name": card.contact_name,
        "balance": money(balance, currency, language),
        "available": money(available, currency, language),
        "topup_url": plan.redirect_url if plan else "",
    }
    if (
        event.kind in ("low_balance", "data_overage_cap_reached")
        and words[0].lstrip("-").isdigit()
        or event.kind == "topup"
        and words[0].isdigit()
    ):
        fields["amount"] = money(int(words[0]), currency, language)
    elif event.kind == "loan_granted" and len(words) == 3 and all(word.isdigit() for word in words):
        # '<amount> <fee> <owed after it>' (lua/functions/borrow.lua)
        fields["amount"], fields["fee"], fields["owed"] = (money(int(word), currency, language) for word in words)
    elif event.kind == "suspension_coming" and len(words) >= 3:
        fields["next_status"] = status_words(words[0], language)
        fields["next_step_at"] = local_time(int(words[1]), card.preferences.time_zone, language)
        fields["days"] = int(words[2])
    elif event.kind in STATUS_OF_NOTICE:
        fields["reason"] = words[0]
    elif event.kind == "sign_in_code":
        fields["code"] = sign_in_code(event)
    elif event.kind == "offer" and len(words) == 2:
        fields["offer_bundle"] = bundle_name(names, words[0], language)
        fields["offer_price"] = money(int(words[1]), currency, language)
    elif event.kind in ("bonus_granted", "bonus_expired") and len(words) >= 2 and words[1].isdigit():
        fields["amount"] = money(int(words[1]), currency, language)
        if len(words) >= 3 and words[2].isdigit():
            fields["valid_until"] = local_time(int(words[2]), card.preferences.time_zone, language)
    elif event.kind.startswith("bundle_"):
        fields["bundle"] = bundle_name(names, bundle_of(words[0]), language)
        fields["percent"] = int(words[1]) if event.kind == "bundle_nearly_used" and len(words) > 1 else 0
    return msgspec.convert(fields, NoticeContext)


def bundle_name(names: Names, bundle_id: str, language: str) -> str:
    """The bundle as the subscriber knows it; its id only where the words files name none."""
    return names.get(language, LanguageNames()).bundles.get(bundle_id, bundle_id)
