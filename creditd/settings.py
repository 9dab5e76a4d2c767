"""Configuration: frozen msgspec structs read from TOML, unknown fields forbidden, every limit named.

Limits are checked at the edge (creditd/api/validation.py) and again inside the Lua functions, which get
them through the generated CONFIG table (creditd/store/library.py).
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from creditd.errors import ConfigError
from creditd.front_settings import CHANNELS as CHANNELS
from creditd.front_settings import LANGUAGES as LANGUAGES
from creditd.front_settings import MARKETING_NOTICE_KINDS as MARKETING_NOTICE_KINDS
from creditd.front_settings import SERVICE_NOTICE_KINDS as SERVICE_NOTICE_KINDS
from creditd.front_settings import Channel as Channel
from creditd.front_settings import EmailChannelSettings as EmailChannelSettings
from creditd.front_settings import Language as Language
from creditd.front_settings import NotificationSettings as NotificationSettings
from creditd.front_settings import PortalSettings as PortalSettings
from creditd.front_settings import SmsChannelSettings as SmsChannelSettings
from creditd.front_settings import Struct as Struct
from creditd.front_settings import WebhookChannelSettings as WebhookChannelSettings
from creditd.rating_config import MAX_PREFIXES, MAX_ZONE_PLMNS, check_rating, load_prefix_files

MAX_EXACT_INTEGER = 2**53 - 1
MAX_UINT32 = 2**32 - 1

DEFAULT_PARTITIONS = 256
MAX_CREDIT_TIERS = 16
MAX_PLAN_CHANGES = 32
MAX_PLAN_CHANGE_ACCOUNTS = 10_000
MAX_TARIFFS_PER_PLAN = 256
MAX_DESTINATIONS = 4096
MAX_ZONES = 1024
MAX_TIMINGS = 256
MAX_TIMING_DATES = 1_000

PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=MAX_EXACT_INTEGER)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0, le=MAX_EXACT_INTEGER)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
# E.164: at most 15 digits; a destination prefix is a leading part of one.
Prefix = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,15}$")]
# MCC + MNC.
Plmn = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{5,6}$")]
# "HH:MM" local time; "24:00" only as a band's end.
ClockTime = Annotated[str, msgspec.Meta(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
RatingNames = Annotated[list[Name], msgspec.Meta(max_length=64)]


Role = Literal["gateway", "topup", "crm", "portal", "admin"]


class ServerSettings(Struct, frozen=True):
    listen: str = "127.0.0.1:50051"
    drain_timeout_s: Annotated[float, msgspec.Meta(ge=0, le=600)] = 10.0
    max_message_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024


class RedisSettings(Struct, frozen=True):
    # Empty: start the embedded Redis-compatible server in data_dir.
    url: str = ""
    data_dir: str = "data"
    partitions: Annotated[int, msgspec.Meta(ge=1, le=16384)] = DEFAULT_PARTITIONS
    call_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    max_connections: Annotated[int, msgspec.Meta(ge=2, le=1024)] = 16
    start_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0
    max_pipeline_commands: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 512
    max_in_flight_pipelines: Annotated[int, msgspec.Meta(ge=1, le=256)] = 8
    # A pipeline beyond the first in flight goes out only with at least this many calls; fewer wait
    # for the one in flight and join the next (store/pipeline.py).
    parallel_pipeline_min_calls: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 128
    health_check_interval_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0
    # Cluster redirections (MOVED, ASK, TRYAGAIN) followed per call before giving up; safe to resend
    # because every function is idempotent.
    redirect_attempts: Annotated[int, msgspec.Meta(ge=1, le=64)] = 16
    # Replicas that must confirm a pipeline's writes (WAIT) before its requests are answered.
    # 0: acknowledge after the primary's write (asynchronous replication; see README, Failover).
    wait_replicas: Annotated[int, msgspec.Meta(ge=0, le=16)] = 0
    wait_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    # A server whose clock differs from Redis' TIME by more than this refuses every call and reports
    # NOT_SERVING (docs/design.md, Where time comes from). 0: not checked.
    max_clock_skew_ms: Annotated[int, msgspec.Meta(ge=0, le=3_600_000)] = 2_000
    # rediss:// (and rediss+sentinel://, rediss+cluster://): CA bundle, and a client certificate
    # and key when the servers ask for one.
    tls_ca_path: str = ""
    tls_cert_path: str = ""
    tls_key_path: str = ""


class Limits(Struct, frozen=True):
    max_amount_minor: PositiveInt = 10**12
    max_balance_minor: PositiveInt = 10**15
    max_units: PositiveInt = 10**15
    max_units_per_request: Annotated[int, msgspec.Meta(ge=1, le=256)] = 16
    max_batch_requests: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    max_sessions_per_account: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 256
    max_buckets_per_account: Annotated[int, msgspec.Meta(ge=0, le=256)] = 16
    max_rating_groups_per_bucket: Annotated[int, msgspec.Meta(ge=1, le=64)] = 32
    max_session_id_length: Annotated[int, msgspec.Meta(ge=1, le=512)] = 128
    max_contact_field_length: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 128
    max_ledger_page: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    # Per account: older entries are trimmed, their sum carried in the account (memory stays bounded).
    max_ledger_entries: Annotated[int, msgspec.Meta(ge=10, le=10_000_000)] = 2000
    default_ledger_page: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 50
    answer_retention_s: Annotated[int, msgspec.Meta(ge=3600, le=30 * 86400)] = 3600
    topup_key_retention_s: Annotated[int, msgspec.Meta(ge=3600, le=366 * 86400)] = 7 * 86400
    idle_session_validity_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 600
    max_events_per_partition: Annotated[int, msgspec.Meta(ge=100, le=10**8)] = 100_000
    # Usage records: kept this long (the sweeper trims older ones; export before), and at most about
    # this many per partition.
    usage_retention_s: Annotated[int, msgspec.Meta(ge=3600, le=366 * 86400)] = 7 * 86400
    max_usage_per_partition: Annotated[int, msgspec.Meta(ge=1000, le=10**9)] = 1_000_000
    # Usage summaries (per account: totals per local day, recent calls and SMS; the sweeper folds
    # the records in): kept this long after the last write, days older dropped; at most this many
    # recent entries; at most this many records per summarize_usage call.
    usage_summary_retention_s: Annotated[int, msgspec.Meta(ge=86400, le=400 * 86400)] = 35 * 86400
    max_recent_usage: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    max_usage_summary_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    # Self-service sign-in: a code lives this long and takes this many wrong tries; at most this
    # many codes per account per window; a portal session lasts this long.
    sign_in_code_lifetime_s: Annotated[int, msgspec.Meta(ge=30, le=3600)] = 300
    max_sign_in_tries: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5
    max_sign_in_codes: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    sign_in_window_s: Annotated[int, msgspec.Meta(ge=60, le=86400)] = 900
    portal_session_s: Annotated[int, msgspec.Meta(ge=60, le=7 * 86400)] = 3600
    # Vouchers: the largest amount, the longest validity.
    max_voucher_validity_s: Annotated[int, msgspec.Meta(ge=86400, le=10 * 366 * 86400)] = 3 * 366 * 86400
    # Abuse limits: whole server, per caller in flight, per caller on Accounts calls.
    max_concurrent_rpcs: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000
    max_in_flight_per_client: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1_024
    accounts_calls_per_client_s: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = 1_000.0
    accounts_burst_per_client: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 2_000


class SweeperSettings(Struct, frozen=True):
    enabled: bool = True
    interval_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 1.0
    # A session that has not reported by its deadline plus this is an orphan.
    grace_period_s: Annotated[int, msgspec.Meta(ge=0, le=86400)] = 60
    # release: give the reservation back; charge: debit it as if used.
    orphan_policy: Literal["release", "charge"] = "release"
    max_sessions_per_pass: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    lease_s: Annotated[float, msgspec.Meta(ge=0.1, le=600)] = 10.0
    # A pass is spread over interval_s in steps of this many partitions (core/sweeper.py).
    partitions_per_step: Annotated[int, msgspec.Meta(ge=1, le=16384)] = 16


class SecuritySettings(Struct, frozen=True):
    # PEM files; all three or none. With them, clients need a certificate signed by the client CA.
    tls_cert_path: str = ""
    tls_key_path: str = ""
    tls_client_ca_path: str = ""
    # Role -> certificate names (common name or DNS SAN) that have it.
    roles: dict[Role, list[Annotated[str, msgspec.Meta(max_length=255)]]] = msgspec.field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_path)


class EventSettings(Struct, frozen=True):
    # How often an idle feed looks for new events.
    poll_interval_s: Annotated[float, msgspec.Meta(gt=0, le=10)] = 0.05
    # Events younger than this (by Redis' clock) wait, so none can appear behind one delivered.
    settle_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 20
    # Entries read per stream per round trip.
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500
    # Concurrent WatchEvents and WatchNotifications streams per server process.
    max_watchers: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 256


class MetricsSettings(Struct, frozen=True):
    # HOST:PORT of the Prometheus endpoint; empty: no endpoint.
    listen: str = "127.0.0.1:9464"
    # Top-up channels counted under their own label; any other channel is counted as "other".
    channels: list[Name] = msgspec.field(default_factory=lambda: ["terminal", "bank", "voucher", "agent", "cli"])


class Tariff(Struct, frozen=True):
    rating_group: Annotated[int, msgspec.Meta(ge=0, le=MAX_UINT32)]
    name: Name
    unit: Literal["BYTES", "SECONDS", "EVENTS"]
    # Price of one block in minor units; 0 = free.
    price_minor: Annotated[int, msgspec.Meta(ge=0, le=10**9)]
    block_size: Annotated[int, msgspec.Meta(ge=1, le=10**12)]
    default_grant: Annotated[int, msgspec.Meta(ge=1, le=10**12)]
    validity_time_s: Annotated[int, msgspec.Meta(ge=1, le=86400)]
    # originating: charged, blocked by one-way suspension; terminating: blocked only by two-way.
    direction: Literal["originating", "terminating"] = "originating"
    # Served even under one-way suspension (top-up portal, emergency).
    always_allowed: bool = False
    # Criteria (docs/design.md, Rating): each given one narrows the tariff; per unit the matching
    # tariff of the rating group with the most criteria wins. Empty: any.
    service_ids: Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=MAX_UINT32)]], msgspec.Meta(max_length=64)] = (
        msgspec.field(default_factory=list)
    )
    destinations: RatingNames = msgspec.field(default_factory=list)
    # Zone names, or the built-in "home" (a plan's home_plmns) and "roaming" (a PLMN no zone lists).
    zones: RatingNames = msgspec.field(default_factory=list)
    timing: Name | None = None
    # Sent with every grant: ask again when this share of the grant is left; return an idle grant.
    quota_threshold_percent: Annotated[int, msgspec.Meta(ge=0, le=99)] = 20
    quota_holding_time_s: Annotated[int, msgspec.Meta(ge=0, le=86400)] = 0
    # The content or service provider this tariff's usage is settled with; empty: the operator's own.
    provider: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:-]{0,64}$")] = ""

    @property
    def specificity(self) -> int:
        return sum(bool(given) for given in (self.service_ids, self.destinations, self.zones, self.timing))


class Bundle(Struct, frozen=True):
    bundle_id: Name
    price_minor: Annotated[int, msgspec.Meta(ge=0, le=10**12)]
    unit: Literal["BYTES", "SECONDS", "EVENTS"]
    amount: Annotated[int, msgspec.Meta(ge=1, le=10**15)]
    # Empty: every rating group of the unit.
    rating_groups: Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=MAX_UINT32)]], msgspec.Meta(max_length=32)] = (
        msgspec.field(default_factory=list)
    )
    # 0: never expires.
    validity_s: Annotated[int, msgspec.Meta(ge=0, le=3 * 366 * 86400)] = 30 * 86400
    priority: Annotated[int, msgspec.Meta(ge=0, le=MAX_UINT32)] = 10
    exhaustion_policy: Literal["CAP", "THROTTLE", "OVERAGE"] = "OVERAGE"
    # Where the bucket serves: zone names, "home" or "roaming". Empty: at home only.
    zones: RatingNames = msgspec.field(default_factory=list)
    # Rollover: at expiry, this share of what is left becomes a bucket of the same kind expiring at
    # the end of the next billing cycle, at most rollover_max_cycles times in a row. 0: none.
    rollover_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0
    rollover_max_cycles: Annotated[int, msgspec.Meta(ge=1, le=12)] = 1


class LoanOffer(Struct, frozen=True):
    """Emergency credit a subscriber may borrow (Accounts.Borrow): the amount is credited at once; it
    and the fee are owed, and recovered from the next top-ups."""

    offer_id: Name
    amount_minor: Annotated[int, msgspec.Meta(ge=1, le=10**12)]
    # Owed (loans and fees not yet recovered) after borrowing, at most.
    max_outstanding_minor: Annotated[int, msgspec.Meta(ge=1, le=10**12)]
    fee_minor: Annotated[int, msgspec.Meta(ge=0, le=10**12)] = 0
    # Credit tiers that may borrow it; empty: every tier.
    tiers: Annotated[list[Name], msgspec.Meta(max_length=32)] = msgspec.field(default_factory=list)


class Preferences(Struct, frozen=True):
    """A plan's defaults for its subscribers' notification preferences (Accounts.SetPreferences sets
    an account's own; the time zone defaults to the plan's)."""

    language: Language = "en"
    channels: Annotated[list[Channel], msgspec.Meta(max_length=3)] = msgspec.field(default_factory=lambda: ["sms"])
    marketing_opt_in: bool = False
    # Both or neither; neither: no quiet hours.
    quiet_hours_start: ClockTime | None = None
    quiet_hours_end: ClockTime | None = None


class CreditTier(Struct, frozen=True):
    name: Name
    # Accounts whose average monthly top-up over the plan's credit_tier_months reaches this.
    min_average_topup_minor: NonNegativeInt
    credit_limit_minor: NonNegativeInt


class Plan(Struct, frozen=True, kw_only=True):
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
    credit_limit_minor: NonNegativeInt = 0
    final_unit_action: Literal["TERMINATE", "REDIRECT", "RESTRICT_ACCESS"] = "TERMINATE"
    redirect_url: Annotated[str, msgspec.Meta(max_length=512)] = ""
    throttle_kbps: Annotated[int, msgspec.Meta(ge=1, le=10**7)] = 256
    # The suspension ladder: one-way still in debt after this becomes two-way (with the late fee);
    # two-way after this becomes terminated (and blacklisted).
    one_way_grace_period_s: Annotated[int, msgspec.Meta(ge=0, le=366 * 86400)] = 7 * 86400
    two_way_grace_period_s: Annotated[int, msgspec.Meta(ge=0, le=3 * 366 * 86400)] = 30 * 86400
    late_fee_minor: NonNegativeInt = 0
    # A low_balance event is written when a charge takes the balance to or below one of these.
    low_balance_thresholds_minor: Annotated[list[int], msgspec.Meta(max_length=8)] = msgspec.field(default_factory=list)
    # suspension_coming events this many days before the ladder's next step (descending).
    suspension_reminder_days: Annotated[
        list[Annotated[int, msgspec.Meta(ge=1, le=366)]], msgspec.Meta(max_length=8)
    ] = msgspec.field(default_factory=list)
    # A bundle_nearly_used event when this much of a bucket is consumed (bundle_used_up at 100 %).
    bundle_warning_percent: Annotated[int, msgspec.Meta(ge=1, le=99)] = 80
    # Money spent on data beyond bundles per billing cycle; reached: data is throttled. 0: no cap.
    monthly_data_overage_cap_minor: NonNegativeInt = 0
    # Credit tiers by average monthly top-up, ascending; the first has min 0 and credit limit 0.
    # Empty: every account gets credit_limit_minor.
    credit_tiers: Annotated[list[CreditTier], msgspec.Meta(max_length=MAX_CREDIT_TIERS)] = msgspec.field(
        default_factory=list
    )
    credit_tier_months: Annotated[int, msgspec.Meta(ge=1, le=24)] = 3
    # IANA name: timings are local times of this zone.
    time_zone: Annotated[str, msgspec.Meta(max_length=64)] = "UTC"
    # Visited networks that count as home (an empty visited_plmn always does).
    home_plmns: Annotated[list[Plmn], msgspec.Meta(max_length=64)] = msgspec.field(default_factory=list)
    preferences: Preferences = Preferences()
    # Notices of these kinds go out even in the subscriber's quiet hours.
    urgent_notice_kinds: Annotated[list[Name], msgspec.Meta(max_length=32)] = msgspec.field(default_factory=list)
    tariffs: Annotated[list[Tariff], msgspec.Meta(max_length=MAX_TARIFFS_PER_PLAN)]
    bundles: Annotated[list[Bundle], msgspec.Meta(max_length=256)] = msgspec.field(default_factory=list)
    loan_offers: Annotated[list[LoanOffer], msgspec.Meta(max_length=32)] = msgspec.field(default_factory=list)


class Destination(Struct, frozen=True):
    """A destination set: called numbers starting with one of its prefixes (the longest match wins)."""

    prefixes: Annotated[list[Prefix], msgspec.Meta(max_length=MAX_PREFIXES)] = msgspec.field(default_factory=list)
    # One prefix a line, or "prefix,name"; relative to the config file. Read into prefixes on load.
    prefixes_file: Annotated[str, msgspec.Meta(max_length=1024)] = ""


class Zone(Struct, frozen=True):
    plmns: Annotated[list[Plmn], msgspec.Meta(min_length=1, max_length=MAX_ZONE_PLMNS)]


class Timing(Struct, frozen=True):
    """When a tariff applies, in the plan's local time: every condition given must hold. A band that
    crosses midnight belongs to the day it starts (fri 22:00-07:00 includes Saturday 03:00)."""

    weekdays: Annotated[list[Weekday], msgspec.Meta(max_length=7)] = msgspec.field(default_factory=list)
    # Both or neither; neither: all day.
    start: ClockTime | None = None
    end: ClockTime | None = None
    dates: Annotated[list[date], msgspec.Meta(max_length=MAX_TIMING_DATES)] = msgspec.field(default_factory=list)


class PlanChange(Struct, frozen=True):
    """Moves a cohort to another plan from a date on, lazily (each account on its next request)."""

    change_id: Name
    to_plan: Name
    effective_at: datetime
    # The cohort: accounts matching every list given (an empty list matches all).
    from_plans: Annotated[list[Name], msgspec.Meta(max_length=64)] = msgspec.field(default_factory=list)
    tiers: Annotated[list[Name], msgspec.Meta(max_length=MAX_CREDIT_TIERS)] = msgspec.field(default_factory=list)
    accounts: Annotated[list[Name], msgspec.Meta(max_length=MAX_PLAN_CHANGE_ACCOUNTS)] = msgspec.field(
        default_factory=list
    )
    # Gradual rollout: this share of the cohort (chosen by a stable hash of change and account) moves.
    rollout_percent: Annotated[int, msgspec.Meta(ge=0, le=100)] = 100

    @property
    def effective_at_ms(self) -> int:
        return int(self.effective_at.timestamp() * 1000)


class Settings(Struct, frozen=True, kw_only=True):
    server: ServerSettings = ServerSettings()
    redis: RedisSettings = RedisSettings()
    limits: Limits = Limits()
    sweeper: SweeperSettings = SweeperSettings()
    metrics: MetricsSettings = MetricsSettings()
    events: EventSettings = EventSettings()
    security: SecuritySettings = SecuritySettings()
    notifications: NotificationSettings = NotificationSettings()
    portal: PortalSettings = PortalSettings()
    plans: dict[Name, Plan]
    destinations: Annotated[dict[Name, Destination], msgspec.Meta(max_length=MAX_DESTINATIONS)] = msgspec.field(
        default_factory=dict
    )
    zones: Annotated[dict[Name, Zone], msgspec.Meta(max_length=MAX_ZONES)] = msgspec.field(default_factory=dict)
    timings: Annotated[dict[Name, Timing], msgspec.Meta(max_length=MAX_TIMINGS)] = msgspec.field(default_factory=dict)
    plan_changes: Annotated[list[PlanChange], msgspec.Meta(max_length=MAX_PLAN_CHANGES)] = msgspec.field(
        default_factory=list
    )


def _check_loan_offers(where: str, plan: Plan, limits: Limits) -> None:
    if len({offer.offer_id for offer in plan.loan_offers}) != len(plan.loan_offers):
        raise ConfigError(f"{where}.loan_offers: an offer_id appears twice")
    tiers = {tier.name for tier in plan.credit_tiers}
    for index, offer in enumerate(plan.loan_offers):
        at = f"{where}.loan_offers[{index}]"
        if offer.amount_minor + offer.fee_minor > offer.max_outstanding_minor:
            raise ConfigError(f"{at}.max_outstanding_minor: below the offer's amount and fee")
        if offer.max_outstanding_minor > limits.max_amount_minor:
            raise ConfigError(f"{at}.max_outstanding_minor: above limits.max_amount_minor")
        unknown = sorted(set(offer.tiers) - tiers)
        if unknown:
            raise ConfigError(f"{at}.tiers: {', '.join(unknown)} is not a credit tier of the plan")


def _check_tiers(where: str, plan: Plan, limits: Limits) -> None:
    if not plan.credit_tiers:
        return
    lowest = plan.credit_tiers[0]
    if lowest.min_average_topup_minor != 0 or lowest.credit_limit_minor != 0:
        raise ConfigError(
            f"{where}.credit_tiers[0]: the lowest tier needs min_average_topup_minor 0 and credit_limit_minor 0"
        )
    if plan.credit_limit_minor != 0:
        raise ConfigError(f"{where}.credit_limit_minor: must be 0 with credit_tiers (the tiers give the limit)")
    for index, (lower, tier) in enumerate(zip(plan.credit_tiers, plan.credit_tiers[1:], strict=False), start=1):
        if tier.min_average_topup_minor <= lower.min_average_topup_minor:
            raise ConfigError(f"{where}.credit_tiers[{index}].min_average_topup_minor: must ascend")
        if tier.credit_limit_minor > limits.max_amount_minor:
            raise ConfigError(f"{where}.credit_tiers[{index}].credit_limit_minor: above limits.max_amount_minor")
    if len({tier.name for tier in plan.credit_tiers}) != len(plan.credit_tiers):
        raise ConfigError(f"{where}.credit_tiers: a tier name appears twice")


def _check_plan_changes(settings: Settings) -> None:
    if len({change.change_id for change in settings.plan_changes}) != len(settings.plan_changes):
        raise ConfigError("plan_changes: a change_id appears twice")
    for index, change in enumerate(settings.plan_changes):
        where = f"plan_changes[{index}]"
        if change.effective_at.tzinfo is None:
            raise ConfigError(f"{where}.effective_at: needs a time zone offset (e.g. 2027-01-01T00:00:00Z)")
        target = settings.plans.get(change.to_plan)
        if target is None:
            raise ConfigError(f"{where}.to_plan: unknown plan {change.to_plan}")
        sources = change.from_plans or list(settings.plans)
        for name in change.from_plans:
            if name not in settings.plans:
                raise ConfigError(f"{where}.from_plans: unknown plan {name}")
        if change.from_plans and any(settings.plans[name].currency != target.currency for name in sources):
            raise ConfigError(f"{where}.from_plans: every plan must have the currency of {change.to_plan}")


def _check_coherence(settings: Settings) -> None:
    limits = settings.limits
    if limits.max_amount_minor > limits.max_balance_minor:
        raise ConfigError("limits.max_amount_minor: must not exceed limits.max_balance_minor")
    if settings.redis.wait_timeout_ms >= settings.redis.call_timeout_s * 1000:
        raise ConfigError("redis.wait_timeout_ms: must be below redis.call_timeout_s (a call waits for its replicas)")
    if limits.default_ledger_page > limits.max_ledger_page:
        raise ConfigError("limits.default_ledger_page: must not exceed limits.max_ledger_page")
    security = settings.security
    given = [bool(security.tls_cert_path), bool(security.tls_key_path), bool(security.tls_client_ca_path)]
    if any(given) and not all(given):
        raise ConfigError("security: tls_cert_path, tls_key_path and tls_client_ca_path go together (mutual TLS)")
    email = settings.notifications.email
    if email.host and "@" not in email.sender:
        raise ConfigError("notifications.email.sender: an address (From) is required with a host")
    if len(settings.metrics.channels) > 32:
        raise ConfigError("metrics.channels: at most 32 (each is a label value)")
    if not settings.plans:
        raise ConfigError("plans: at least one plan is required")
    for plan_name, plan in settings.plans.items():
        where = f"plans.{plan_name}"
        if plan.final_unit_action == "REDIRECT" and not plan.redirect_url:
            raise ConfigError(f"{where}.redirect_url: required when final_unit_action is REDIRECT")
        if plan.late_fee_minor > limits.max_amount_minor:
            raise ConfigError(f"{where}.late_fee_minor: above limits.max_amount_minor")
        if plan.credit_limit_minor > limits.max_amount_minor:
            raise ConfigError(f"{where}.credit_limit_minor: above limits.max_amount_minor")
        if plan.suspension_reminder_days != sorted(set(plan.suspension_reminder_days), reverse=True):
            raise ConfigError(f"{where}.suspension_reminder_days: must be distinct and descending")
        _check_tiers(where, plan, limits)
        defaults = plan.preferences
        if (defaults.quiet_hours_start is None) != (defaults.quiet_hours_end is None):
            raise ConfigError(f"{where}.preferences: quiet_hours_start and quiet_hours_end go together")
        if len(set(defaults.channels)) != len(defaults.channels):
            raise ConfigError(f"{where}.preferences.channels: a channel appears twice")
        unknown_kinds = sorted(set(plan.urgent_notice_kinds) - set(SERVICE_NOTICE_KINDS))
        if unknown_kinds:
            raise ConfigError(
                f"{where}.urgent_notice_kinds: {', '.join(unknown_kinds)} is not a service notice kind"
                f" ({', '.join(SERVICE_NOTICE_KINDS)})"
            )
        _check_loan_offers(where, plan, limits)
        if len({bundle.bundle_id for bundle in plan.bundles}) != len(plan.bundles):
            raise ConfigError(f"{where}.bundles: a bundle_id appears twice")
        for index, bundle in enumerate(plan.bundles):
            if bundle.price_minor > limits.max_amount_minor:
                raise ConfigError(f"{where}.bundles[{index}].price_minor: above limits.max_amount_minor")
        for index, tariff in enumerate(plan.tariffs):
            if tariff.default_grant > limits.max_units:
                raise ConfigError(f"{where}.tariffs[{index}].default_grant: above limits.max_units")
    _check_plan_changes(settings)


def parse_settings(document: dict[str, object], source: str = "config", base_directory: Path | None = None) -> Settings:
    """base_directory: where relative prefixes_file paths start (the config file's directory)."""
    plans = document.get("plans")
    if isinstance(plans, dict):
        for plan_name, plan_document in plans.items():
            try:
                msgspec.convert(plan_document, Plan)
            except msgspec.ValidationError as error:  # names the plan, which msgspec's path does not
                raise ConfigError(f"{source}: plans.{plan_name}: {error}") from None
    try:
        settings = msgspec.convert(document, Settings)
    except msgspec.ValidationError as error:
        raise ConfigError(f"{source}: {error}") from None
    base = base_directory or Path.cwd()
    settings = load_prefix_files(settings, base)
    templates = base / settings.notifications.templates_dir
    settings = msgspec.structs.replace(
        settings, notifications=msgspec.structs.replace(settings.notifications, templates_dir=str(templates))
    )
    _check_coherence(settings)
    check_rating(settings)
    return settings


def load_settings(path: Path) -> Settings:
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_settings(document, str(path), path.parent)
