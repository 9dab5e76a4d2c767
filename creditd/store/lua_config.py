"""How the configuration reaches Lua: the CONFIG table the library renders into every function, built
from the settings (the plans, their rating groups and bonuses, the sweeper, the limits Lua reads)."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence

from creditd.config.fronts import LANGUAGES
from creditd.config.plans import Plan
from creditd.config.settings import PlanChange, Settings
from creditd.store.codes import ExhaustionPolicy, FinalUnitAction, Unit
from creditd.store.lua_values import LuaValue
from creditd.store.rating_tables import rating_config_table, rating_groups_table


def _plan_table(plan: Plan) -> dict[str, LuaValue]:
    return {
        "currency": plan.currency,
        "credit_limit_minor": plan.credit_limit_minor,
        "final_unit_action": FinalUnitAction[plan.final_unit_action].value,
        "redirect_url": plan.redirect_url,
        "throttle_kbps": plan.throttle_kbps,
        "low_balance_thresholds_minor": list(plan.low_balance_thresholds_minor),
        "one_way_grace_period_s": plan.one_way_grace_period_s,
        "two_way_grace_period_s": plan.two_way_grace_period_s,
        "late_fee_minor": plan.late_fee_minor,
        "suspension_reminder_days": list(plan.suspension_reminder_days),
        "bundle_warning_percent": plan.bundle_warning_percent,
        "monthly_data_overage_cap_minor": plan.monthly_data_overage_cap_minor,
        "credit_tier_months": plan.credit_tier_months,
        "credit_tiers": [
            {
                "name": tier.name,
                "min_average_topup_minor": tier.min_average_topup_minor,
                "credit_limit_minor": tier.credit_limit_minor,
            }
            for tier in plan.credit_tiers
        ],
        "bundles": {
            bundle.bundle_id: {
                "price_minor": bundle.price_minor,
                "unit": Unit[bundle.unit].value,
                "amount": bundle.amount,
                "rating_groups": ",".join(str(group) for group in bundle.rating_groups),
                "validity_s": bundle.validity_s,
                "priority": bundle.priority,
                "policy": ExhaustionPolicy[bundle.exhaustion_policy].value,
                "zones": ",".join(bundle.zones or ["home"]),
                "rollover_percent": bundle.rollover_percent,
                "rollover_max_cycles": bundle.rollover_max_cycles,
            }
            for bundle in plan.bundles
        },
        "loan_offers": {
            offer.offer_id: {
                "amount_minor": offer.amount_minor,
                "fee_minor": offer.fee_minor,
                "max_outstanding_minor": offer.max_outstanding_minor,
                "tiers": {tier: True for tier in offer.tiers},
                "any_tier": not offer.tiers,
            }
            for offer in plan.loan_offers
        },
        "topup_bonuses": [
            {
                "min_amount_minor": bonus.min_amount_minor,
                "bonus_percent": bonus.bonus_percent,
                "bonus_minor": bonus.bonus_minor,
                "validity_s": bonus.validity_s,
                "priority": bonus.priority,
                "rating_groups": ",".join(str(group) for group in bonus.rating_groups),
                "zones": ",".join(bonus.zones or ["home"]),
                "instalments": bonus.instalments,
            }
            for bonus in plan.topup_bonuses
        ],
        "group_money_first": plan.group_money_first,
        "time_zone": plan.time_zone,
        "preferences": {
            "language": plan.preferences.language,
            "time_zone": plan.time_zone,
            "channels": ",".join(plan.preferences.channels),
            "marketing_opt_in": plan.preferences.marketing_opt_in,
            "quiet_hours_start": plan.preferences.quiet_hours_start or "",
            "quiet_hours_end": plan.preferences.quiet_hours_end or "",
        },
        "home_plmns": {plmn: True for plmn in plan.home_plmns},
        "rating_groups": rating_groups_table(plan),
        "providers": {tariff.name: tariff.provider for tariff in plan.tariffs if tariff.provider},
    }


def _name_set(names: Sequence[str]) -> dict[str, LuaValue] | None:
    # None (no key in the Lua table): the cohort is not restricted by this list.
    return {name: True for name in names} if names else None


def _plan_change_table(change: PlanChange) -> dict[str, LuaValue]:
    table: dict[str, LuaValue] = {
        "id": change.change_id,
        "to_plan": change.to_plan,
        "effective_at_ms": change.effective_at_ms,
        "rollout_percent": change.rollout_percent,
    }
    for field, names in (("from_plans", change.from_plans), ("tiers", change.tiers), ("accounts", change.accounts)):
        if (name_set := _name_set(names)) is not None:
            table[field] = name_set
    return table


# CONFIG.limits.<name>, or <name> on a local alias of CONFIG.limits (which Lua code calls `limits`).
LIMIT_READ = re.compile(r"\blimits\.(\w+)")


def limits_read(lua_sources: Iterable[str]) -> set[str]:
    """The [limits] options Lua reads (limits.<name> in its sources, code or header): only those are rendered,
    so the rest (the gRPC edge's abuse limits, the portal's) stay the server's own."""
    return {name for source in lua_sources for name in LIMIT_READ.findall(source)}


def config_table(settings: Settings, lua_reads: Collection[str]) -> dict[str, LuaValue]:
    unknown = sorted(set(lua_reads) - set(settings.limits.__struct_fields__))
    if unknown:
        raise ValueError(f"lua reads CONFIG.limits.{unknown[0]}, which [limits] does not have")
    limits: dict[str, LuaValue] = {name: getattr(settings.limits, name) for name in sorted(lua_reads)}
    plans: dict[str, LuaValue] = {name: _plan_table(plan) for name, plan in settings.plans.items()}
    sweeper: dict[str, LuaValue] = {
        "grace_period_s": settings.sweeper.grace_period_s,
        "orphan_policy": settings.sweeper.orphan_policy,
    }
    plan_changes = [_plan_change_table(change) for change in settings.plan_changes]
    return {
        "limits": limits,
        "plans": plans,
        "sweeper": sweeper,
        "plan_changes": plan_changes,
        "rating": rating_config_table(settings),
        "languages": {language: True for language in LANGUAGES},
    }
