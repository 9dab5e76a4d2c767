"""The notifier's rules of whether and when a notice goes out, apart from any Redis or channel: the
subscriber's quiet hours, a notice a later event made meaningless (superseded), a sign-in code no
longer the one to type, and the kinds that skip a rule (asked for, confirmations, offers)."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from creditd.config.rating import clock_minutes
from creditd.core.notices import NoticeEvent as Event
from creditd.store.codes import AccountStatus
from creditd.store.replies import AccountRecord

# Events after which an opted-in subscriber is offered a data bundle (core/offers.py).
OFFER_TRIGGERS = ("bundle_used_up", "data_overage_cap_reached")
# Notices the subscriber asked for this minute: never held for quiet hours.
ASKED_FOR_KINDS = ("sign_in_code",)
# Confirmations of money the subscriber moved: never held back by min_interval_s (it is for warnings).
CONFIRMATION_KINDS = ("topup", "bundle_purchased", "loan_granted")
# The status a status notice announces (docs/design.md, Suspension ladder): once the account is in
# another, the notice would tell something no longer true.
STATUS_OF_NOTICE = {
    "resumed": AccountStatus.ACTIVE,
    "suspended_one_way": AccountStatus.ONE_WAY_SUSPENDED,
    "suspended_two_way": AccountStatus.TWO_WAY_SUSPENDED,
    "terminated": AccountStatus.TERMINATED,
}


def in_quiet_hours(now_ms: int, time_zone: str, start: str, end: str) -> int:
    """0 outside the quiet hours; inside, the Unix ms at which they end. Equal start and end: none."""
    if not start or not end or start == end:
        return 0
    local = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(ZoneInfo(time_zone))
    start_minute, end_minute = clock_minutes(start), clock_minutes(end)
    minute = local.hour * 60 + local.minute
    if start_minute < end_minute:
        inside = start_minute <= minute < end_minute
    else:
        inside = not end_minute <= minute < start_minute
    if not inside:
        return 0
    ends = local.replace(hour=end_minute // 60, minute=end_minute % 60, second=0, microsecond=0)
    if ends <= local:
        ends += timedelta(days=1)
    return int(ends.timestamp() * 1000)


def superseded(event: Event, card: AccountRecord) -> str:
    """Why a later event made this notice meaningless ('' when it still holds): a status notice for
    an account now in another status, a low-balance warning after the balance rose above it again.
    A sign-in code is checked against the code creditd holds (Notifier.outdated, code_superseded)."""
    announced = STATUS_OF_NOTICE.get(event.kind)
    if announced is not None and card.status != announced:
        known = card.status in AccountStatus.__members__.values()
        return f"superseded: the account is {AccountStatus(card.status).name if known else card.status} now"
    threshold = event.detail.split(" ")[0]
    if event.kind == "low_balance" and threshold.lstrip("-").isdigit() and card.balance > int(threshold):
        return f"superseded: the balance is above {threshold} again"
    return ""


def code_superseded(digest: str, stored_digest: str, expires_ms: int, now_ms: int) -> str:
    """Why a sign-in code notice no longer holds ('' when its code is still the one to type): the
    subscriber asked for a newer code, used this one (or five wrong tries killed it), or it expired."""
    if not stored_digest:
        return "superseded: the code was used or is void"
    if not hmac.compare_digest(digest, stored_digest):
        return "superseded: a newer sign-in code was issued"
    if now_ms >= expires_ms:
        return "superseded: the code expired"
    return ""
