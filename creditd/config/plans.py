"""A plan's settings table ([plans.<name>]): its tariffs, bundles, loan offers, top-up bonuses,
credit tiers and subscriber defaults, and the rules of one plan that the types cannot say. Part of
the configuration (creditd/settings.py reads them as its [plans] tables)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from creditd.config.fronts import SERVICE_NOTICE_KINDS, Channel, Language
from creditd.config.limits import Limits
from creditd.config.types import (
    MAX_BONUS_INSTALMENTS,
    MAX_CREDIT_TIERS,
    MAX_TARIFFS_PER_PLAN,
    MAX_TOPUP_BONUSES,
    ClockTime,
    Name,
    NonNegativeInt,
    Plmn,
    RatingNames,
    Struct,
)
from creditd.contract import ID, MAX_UINT32
from creditd.errors import ConfigError


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
    provider: Annotated[str, msgspec.Meta(pattern=f"^({ID.regex().pattern})?$")] = ""

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


class TopupBonus(Struct, frozen=True):
    """Bonus money a top-up grants (docs/design.md, Bonus money): the first rule of the plan whose
    min_amount_minor the top-up reaches applies, in the top-up's own call. The bonus is a money
    bucket that pays usage of its rating groups in its zones before main money, never fees, loans,
    bundles or debt; given in instalments, the first comes at once and one more at the start of each
    following billing cycle, each valid validity_s from its grant."""

    min_amount_minor: Annotated[int, msgspec.Meta(ge=1, le=10**12)]
    # One of the two: a share of the top-up (rounded down), or a fixed amount.
    bonus_percent: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    bonus_minor: Annotated[int, msgspec.Meta(ge=0, le=10**12)] = 0
    validity_s: Annotated[int, msgspec.Meta(ge=1, le=3 * 366 * 86400)] = 30 * 86400
    priority: Annotated[int, msgspec.Meta(ge=0, le=MAX_UINT32)] = 10
    # Empty: usage of every rating group.
    rating_groups: Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=MAX_UINT32)]], msgspec.Meta(max_length=32)] = (
        msgspec.field(default_factory=list)
    )
    # Where the bonus pays: zone names, "home" or "roaming". Empty: at home only.
    zones: RatingNames = msgspec.field(default_factory=list)
    instalments: Annotated[int, msgspec.Meta(ge=1, le=MAX_BONUS_INSTALMENTS)] = 1


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
    topup_bonuses: Annotated[list[TopupBonus], msgspec.Meta(max_length=MAX_TOPUP_BONUSES)] = msgspec.field(
        default_factory=list
    )
    # A shared wallet's member on this plan: usage is paid by the group's money before its own (and
    # refilled when what it holds of the group's runs low). Default: its own money first.
    group_money_first: bool = False


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


def _check_topup_bonuses(where: str, plan: Plan, limits: Limits) -> None:
    for index, bonus in enumerate(plan.topup_bonuses):
        at = f"{where}.topup_bonuses[{index}]"
        if (bonus.bonus_percent > 0) == (bonus.bonus_minor > 0):
            raise ConfigError(f"{at}: give one of bonus_percent and bonus_minor")
        if bonus.bonus_minor > limits.max_amount_minor:
            raise ConfigError(f"{at}.bonus_minor: above limits.max_amount_minor")
        if bonus.bonus_minor and bonus.bonus_minor < bonus.instalments:
            raise ConfigError(f"{at}.bonus_minor: less than one minor unit per instalment")
        if bonus.min_amount_minor > limits.max_amount_minor:
            raise ConfigError(f"{at}.min_amount_minor: above limits.max_amount_minor (no top-up could reach it)")


def check_plan(where: str, plan: Plan, limits: Limits) -> None:
    """The rules of one plan that its table's types cannot say (where: plans.<name>, for errors)."""
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
    _check_topup_bonuses(where, plan, limits)
    if len({bundle.bundle_id for bundle in plan.bundles}) != len(plan.bundles):
        raise ConfigError(f"{where}.bundles: a bundle_id appears twice")
    for index, bundle in enumerate(plan.bundles):
        if bundle.price_minor > limits.max_amount_minor:
            raise ConfigError(f"{where}.bundles[{index}].price_minor: above limits.max_amount_minor")
    for index, tariff in enumerate(plan.tariffs):
        if tariff.default_grant > limits.max_units:
            raise ConfigError(f"{where}.tariffs[{index}].default_grant: above limits.max_units")
