"""The Lua function library: rendered from lua/ plus the deployment's CONFIG, loaded into Redis.

The library is one Lua chunk: a generated CONFIG table (limits and plans) and KEY_NAMES table (each
function's KEYS by name, from store/calls.py, and in KEY_NAMES.bind a constructor of each one's
keys), lua/lib/*.lua in LIBRARY_FILES order, then every lua/functions/*.lua, each wrapped in
do ... end so that its locals stay its own. Each lib file names the lib files it uses in its header
("uses: numbers, account"); rendering refuses an order in which a file comes before one it uses.
The chunk's top-level locals share Lua 5.1's limit of 200.
Plans live in the library rather than in keys so that a charge reads no configuration from Redis;
the version is a hash of the rendered source, so a server loads it only when it changed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from redis.exceptions import ResponseError

from creditd.errors import Internal
from creditd.resources import lua_directory
from creditd.settings import LANGUAGES, Plan, PlanChange, Settings
from creditd.store.calls import KEY_LAYOUTS, Calls, fcall
from creditd.store.codes import ExhaustionPolicy, FinalUnitAction, Unit
from creditd.store.connection import AnyRedis, primaries
from creditd.store.lua_values import LuaValue, lua_literal
from creditd.store.rating_tables import rating_config_table, rating_groups_table
from creditd.store.replies import decode_reply

LIBRARY_NAME = "creditd"
LIBRARY_FILES = (
    "codes.lua",
    "numbers.lua",
    "keys.lua",
    "calendar.lua",
    "tariffs.lua",
    "account.lua",
    "bonus.lua",
    "lifecycle.lua",
    "credit.lua",
    "bundle_usage.lua",
    "store.lua",
    "group.lua",
    "usage.lua",
    "rating.lua",
    "session.lua",
)
USES = re.compile(r"^uses: (.+)$", re.M)


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


def config_table(settings: Settings) -> dict[str, LuaValue]:
    # Integer limits only: the rates of client_limits.py are the server's alone.
    limits: dict[str, LuaValue] = {
        name: value
        for name in settings.limits.__struct_fields__
        if isinstance(value := getattr(settings.limits, name), int)
    }
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


def uses_of(source: str) -> list[str]:
    """The lib files a lib file's header says it uses."""
    match = USES.search(source)
    if match is None or match.group(1) == "(nothing)":
        return []
    return [f"{name.strip()}.lua" for name in match.group(1).split(",")]


def check_load_order(sources: Mapping[str, str]) -> None:
    """Raises ValueError when a lib file comes before one it uses (sources in load order)."""
    loaded: set[str] = set()
    for name, source in sources.items():
        missing = [used for used in uses_of(source) if used not in loaded]
        if missing:
            raise ValueError(f"lua/lib/{name} uses {', '.join(missing)}, which LIBRARY_FILES loads later or not at all")
        loaded.add(name)


def key_binders() -> str:
    """KEY_NAMES.bind[function](KEYS): the keys by name in one table constructor (lib/keys.lua); a
    table built key by key is rehashed as it grows, which cost a call some 10 000 instructions."""
    binders = []
    for function, names in KEY_LAYOUTS.items():
        fields = ", ".join(f"{name} = keys[{position}]" for position, name in enumerate(names, 1))
        binders.append(f"  {function} = function(keys) return {{ {fields} }} end,")
    return "KEY_NAMES.bind = {\n" + "\n".join(binders) + "\n}"


def render_library(settings: Settings, directory: Path | None = None) -> str:
    directory = directory or lua_directory()
    sources = {name: (directory / "lib" / name).read_text() for name in LIBRARY_FILES}
    check_load_order(sources)
    key_names: dict[str, LuaValue] = {function: list(names) for function, names in KEY_LAYOUTS.items()}
    body = [
        f"local CONFIG = {lua_literal(config_table(settings))}",
        f"local KEY_NAMES = {lua_literal(key_names)}",
        key_binders(),
    ]
    body += sources.values()
    for path in sorted((directory / "functions").glob("*.lua")):
        body.append(f"do -- {path.name}\n{path.read_text()}\nend")
    source = "\n".join(body)
    version = hashlib.sha256(source.encode()).hexdigest()[:16]
    return f"#!lua name={LIBRARY_NAME}\nlocal LIBRARY_VERSION = '{version}'\n{source}\n"


def library_version(source: str) -> str:
    return source.split("'", 2)[1]


async def ensure_library(client: AnyRedis, source: str) -> bool:
    """Loads the library on every primary that lacks this version (a cluster's new or promoted
    primary, a server restarted without its data); returns True when it loaded anywhere."""
    wanted = library_version(source)
    loaded_anywhere = False
    for node in await primaries(client):
        target = {} if node is None else {"target_nodes": node}
        try:
            reply = await client.execute_command("FCALL_RO", *fcall(Calls.library_version()), **target)
            loaded = decode_reply(reply).body.decode()
        except (ResponseError, Internal):  # no library, or one older than the {code, message, body} reply
            loaded = None
        if loaded == wanted:
            continue
        await client.execute_command("FUNCTION LOAD", "REPLACE", source, **target)
        loaded_anywhere = True
    return loaded_anywhere
