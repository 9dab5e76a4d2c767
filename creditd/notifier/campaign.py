"""`creditd campaign send`: a promotion to a cohort (a plan, a credit tier, at most N accounts),
queued for the notifier rather than sent from here, so that it gets the notifier's guarantees
(delivery records, retries, dead letters, status) and no second process talks to the gateways.

Each chosen account gets, per channel of its preferences, a delivery record in state 'deferred' and
an entry in its partition's due set; the due times are spaced 1/rate apart (the rate holds however
many notifiers run) and, when one falls in the subscriber's quiet hours, moved to their end. Only
subscribers who opted in to marketing and whose line is not closed are chosen; the notifier checks
the opt-in again when it delivers (an opt-out in between wins). A record is written only where none
exists, so sending the same campaign id again queues only the accounts not queued before.
"""

from __future__ import annotations

import msgspec

from creditd.config.settings import Settings
from creditd.core.jobs import cards
from creditd.core.notices import DEFERRED, queue_notice
from creditd.core.notices import NoticeEvent as Event
from creditd.errors import InvalidArgument
from creditd.notifier.rules import in_quiet_hours
from creditd.notifier.templates import CAMPAIGN_PREFIX
from creditd.store.calls import Calls
from creditd.store.codes import AccountStatus
from creditd.store.connection import AnySyncRedis
from creditd.store.keys import notifier_key, partition_of
from creditd.store.replies import AccountRecord

MAX_RATE_PER_S = 10_000.0
MAX_CAMPAIGN_ACCOUNTS = 10_000_000


class Cohort(msgspec.Struct, frozen=True):
    plan: str = ""  # empty: every plan
    tier: str = ""  # empty: every tier
    limit: int = MAX_CAMPAIGN_ACCOUNTS


class CampaignResult(msgspec.Struct):
    accounts_queued: int = 0
    notices_queued: int = 0
    already_queued: int = 0  # accounts this campaign id had queued before
    not_opted_in: int = 0
    outside_cohort: int = 0
    first_due_ms: int = 0
    last_due_ms: int = 0


def check_campaign(template: str, campaigns: tuple[str, ...], campaign_id: str, cohort: Cohort, rate: float) -> None:
    if template not in campaigns:
        known = ", ".join(campaigns) or "none"
        raise InvalidArgument(f"template: no campaigns/{template}.txt in every language (known: {known})")
    if not campaign_id or len(campaign_id) > 64 or not all(ch.isalnum() or ch in "._-" for ch in campaign_id):
        raise InvalidArgument("campaign_id: 1 to 64 letters, digits, '.', '_' or '-'")
    if not 0 < rate <= MAX_RATE_PER_S:
        raise InvalidArgument(f"rate: above 0 and at most {MAX_RATE_PER_S:.0f} per second")
    if not 1 <= cohort.limit <= MAX_CAMPAIGN_ACCOUNTS:
        raise InvalidArgument(f"limit: 1 to {MAX_CAMPAIGN_ACCOUNTS}")


def in_cohort(card: AccountRecord, cohort: Cohort) -> bool:
    return (
        card.status != AccountStatus.TERMINATED
        and (not cohort.plan or card.plan == cohort.plan)
        and (not cohort.tier or card.tier == cohort.tier)
        and bool(card.preferences.channels)
    )


def send_campaign(
    client: AnySyncRedis,
    settings: Settings,
    template: str,
    campaign_id: str,
    cohort: Cohort,
    rate_per_s: float,
    now_ms: int,
) -> CampaignResult:
    calls, partitions = Calls(settings.redis.partitions), settings.redis.partitions
    result = CampaignResult()
    for card in cards(client, calls, now_ms):  # core/jobs.py: every card, in pipelined batches
        if result.accounts_queued >= cohort.limit:
            break
        if not in_cohort(card, cohort):
            result.outside_cohort += 1
            continue
        if not card.preferences.marketing_opt_in:
            result.not_opted_in += 1
            continue
        due_ms = now_ms + int(result.accounts_queued * 1000 / rate_per_s)
        prefs = card.preferences
        due_ms = in_quiet_hours(due_ms, prefs.time_zone, prefs.quiet_hours_start, prefs.quiet_hours_end) or due_ms
        event = Event(f"campaign.{campaign_id}.{card.account_id}", CAMPAIGN_PREFIX + template, card.account_id, now_ms)
        channels = [channel for channel in prefs.channels.split(",") if channel]
        queued = queue(client, settings, partition_of(card.account_id, partitions), event, channels, due_ms)
        if not queued:
            result.already_queued += 1
            continue
        result.accounts_queued += 1
        result.notices_queued += queued
        result.first_due_ms = min(result.first_due_ms or due_ms, due_ms)
        result.last_due_ms = max(result.last_due_ms, due_ms)
    return result


def queue(
    client: AnySyncRedis, settings: Settings, partition: int, event: Event, channels: list[str], due_ms: int
) -> int:
    """Writes the event's delivery records on the channels where none exist; returns how many."""
    queued = 0
    for channel in channels:
        member = f"{event.id}/{channel}"
        key = notifier_key("delivery", partition, idempotency_key=member)
        if not client.hsetnx(key, "state", DEFERRED):
            continue
        pipe = client.pipeline(transaction=False)
        due_key = notifier_key("deliveries_due", partition)
        queue_notice(pipe, key, due_key, event, channel, due_ms, "campaign", settings.notifications.notice_retention_s)
        pipe.execute()
        queued += 1
    return queued
