"""One owner for every Lua function call: a builder per function returning (function, KEYS, ARGV).

The server, the sweeper, the CLI jobs, the load generator and the tests all build their calls here,
so the order of KEYS and ARGV is written once. KEY_LAYOUTS is also rendered into the library as the
Lua table KEY_NAMES (store/library.py): a function reads its keys by name (keys.account, keys.session),
never by position, and a test checks every function header's KEYS lines against these layouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from creditd.store.codes import AnswerFormat
from creditd.store.keys import KEY_PATTERNS, Keys, LayoutBuilder, layout_builder, partition_lease

Argument = str | int | bytes
Command = tuple[str, Sequence[str], Sequence[Argument]]

# The charge's request values travel as one MessagePack word (lua/functions/charge.lua).
_REQUEST_ENCODER = msgspec.msgpack.Encoder()

# A call on one session: charge, release_orphan. The partition's own keys first: the lean
# connection packs a call's leading partition keys once per partition (store/resp.py), not per call.
SESSION_CALL = (
    "deadlines",
    "events",
    "stats",
    "due",
    "blacklist",
    "usage",
    "account",
    "sessions",
    "ledger",
    "session",
)
# A call on one account that may write it.
ACCOUNT_CALL = ("account", "sessions", "ledger", "events", "stats", "due", "blacklist")
# ACCOUNT_CALL with an idempotency record: top_up, purchase_bundle.
RECORD_CALL = ("account", "sessions", "ledger", "events", "record", "stats", "due", "blacklist")

KEY_LAYOUTS: dict[str, tuple[str, ...]] = {
    "charge": SESSION_CALL,
    "release_orphan": SESSION_CALL,
    "create_account": ACCOUNT_CALL,
    "set_status": ACCOUNT_CALL,
    "set_credit_limit": ACCOUNT_CALL,
    "set_plan": ACCOUNT_CALL,
    "set_preferences": ACCOUNT_CALL,
    "advance_account": ACCOUNT_CALL,
    "recompute_tier": ACCOUNT_CALL,
    "top_up": RECORD_CALL,
    "purchase_bundle": RECORD_CALL,
    "adjust": RECORD_CALL,
    "borrow": RECORD_CALL,
    "get_account": ("account", "sessions"),
    "quote_price": ("account",),
    "list_ledger": ("account", "ledger"),
    "claim_partition": ("lease",),
    "summarize_usage": ("summary", "recent"),
    "issue_sign_in_code": ("account", "sign_in"),
    "sign_in": ("sign_in", "portal_session"),
    "sign_out": ("portal_session",),
    "create_voucher": ("voucher",),
    "claim_voucher": ("voucher",),
    "release_voucher": ("voucher",),
    "library_version": (),
    "create_group": ("group", "group_ledger"),
    "top_up_group": ("group", "group_ledger", "group_record"),
    "set_group_member": ("group", "group_ledger"),
    "open_group_transfer": ("group", "group_ledger", "group_pending", "group_record"),
    "settle_group_transfer": ("group", "group_ledger", "group_pending", "group_record"),
    "get_group": ("group",),
    "apply_group_transfer": RECORD_CALL,
    "record_agent_payment": ("agent_day",),
}


class _Builders(dict[str, LayoutBuilder]):
    """Each function's key builder, found by its name (a layout's tuple would be hashed at each
    call), compiled at its first call."""

    def __missing__(self, function: str) -> LayoutBuilder:
        builder = self[function] = layout_builder(KEY_LAYOUTS[function])
        return builder


_BUILDERS = _Builders()

# Functions a SelfService call makes for a portal session: with_session adds the session's key, and
# the function refuses the call (SESSION_ENDED) once the session is gone (lua/lib/keys.lua).
SESSION_GUARDED = frozenset({"get_account", "list_ledger", "top_up", "purchase_bundle", "borrow", "set_preferences"})


def with_session(command: Command, session_key: str) -> Command:
    """command, made for a portal session: its key last (in the account's slot, as the others)."""
    name, keys, args = command
    assert name in SESSION_GUARDED, f"{name} is not made for a portal session"
    return name, (*keys, session_key), args


# Functions that write nothing: called with FCALL_RO where a caller wants that guarantee.
READ_ONLY = frozenset({"get_account", "list_ledger", "library_version", "get_group", "quote_price"})


class AgentPaymentStep(msgspec.Struct, frozen=True, kw_only=True):
    """One step of record_agent_payment: claim, applied, failed or cancelled."""

    action: str
    transaction_id: str
    account_id: str
    amount: int
    paid_at_ms: int
    daily_limit_minor: int
    retention_s: int
    ledger_seq: int = 0


# Read-only members, so that a proto message (whose enum fields are int subtypes) fits.
class UnitLike(Protocol):
    @property
    def rating_group(self) -> int: ...
    @property
    def requested(self) -> int: ...
    @property
    def used(self) -> int: ...
    @property
    def service_id(self) -> int: ...
    @property
    def used_after_tariff_change(self) -> int: ...


class SummaryRecordLike(Protocol):
    """A usage record as summarize_usage takes it (core/usage_summary.py)."""

    @property
    def record_id(self) -> str: ...
    @property
    def time_ms(self) -> int: ...
    @property
    def day(self) -> str: ...
    @property
    def rating_group(self) -> int: ...
    @property
    def unit(self) -> int: ...
    @property
    def zone(self) -> str: ...
    @property
    def destination(self) -> str: ...
    @property
    def units(self) -> int: ...
    @property
    def charged(self) -> int: ...
    @property
    def recent(self) -> bool: ...


class ChargeLike(Protocol):
    """A creditd.v1.ChargeRequest or anything shaped like one."""

    @property
    def session_id(self) -> str: ...
    @property
    def request_type(self) -> int: ...
    @property
    def request_number(self) -> int: ...
    @property
    def account_id(self) -> str: ...
    @property
    def gateway_id(self) -> str: ...
    @property
    def units(self) -> Sequence[UnitLike]: ...
    @property
    def called_party(self) -> str: ...
    @property
    def visited_plmn(self) -> str: ...


class GroupTransferSpec(msgspec.Struct, frozen=True):
    """One transfer between a shared wallet and a member (lua/lib/group.lua): direction 1 to the member
    (amount asked when opening, granted when applying), 2 back from it (amount 0; remove: it leaves the group)."""

    group_id: str
    account_id: str
    transfer_id: str
    direction: int
    amount: int = 0
    currency: str = ""
    refill_minor: int = 1
    remove: bool = False


class UnitSpec(msgspec.Struct, frozen=True):
    """A UnitLike for callers without a proto message (load generators, tools)."""

    rating_group: int
    requested: int = 0
    used: int = 0
    service_id: int = 0
    used_after_tariff_change: int = 0


class ChargeSpec(msgspec.Struct, frozen=True):
    """A ChargeLike for callers without a proto message."""

    session_id: str
    request_type: int
    request_number: int
    account_id: str
    gateway_id: str
    units: Sequence[UnitSpec] = ()
    called_party: str = ""
    visited_plmn: str = ""


class BucketSpec(msgspec.Struct, frozen=True):
    bucket_id: str
    unit: int
    amount: int
    rating_groups: Sequence[int] = ()
    expires_at_ms: int = 0
    priority: int = 0
    exhaustion_policy: int = 0


class NewAccount(msgspec.Struct, frozen=True):
    account_id: str
    plan: str
    initial_balance: int = 0
    # None: the plan's default.
    credit_limit: int | None = None
    contact_name: str = ""
    contact_email: str = ""
    contact_phone: str = ""
    # None: the day of the month of creation (28 from the 29th on).
    billing_cycle_day: int | None = None
    buckets: Sequence[BucketSpec] = ()
    # Who signed the customer (shop, agent, online); '' for none.
    dealer: str = ""


class PreferencesSpec(msgspec.Struct, frozen=True):
    """An account's notification preferences; '' (and no channels) means the plan's default."""

    language: str = ""
    time_zone: str = ""
    channels: Sequence[str] = ()
    marketing_opt_in: bool = False
    quiet_hours_start: str = ""
    quiet_hours_end: str = ""


def fcall(command: Command) -> tuple[Argument, ...]:
    """The words of FCALL (or FCALL_RO) after the verb, for a raw pipeline's execute_command."""
    function, keys, args = command
    return (function, len(keys), *keys, *args)


def fcall_words(command: Command) -> tuple[Argument, ...]:
    """The whole FCALL command, verb first, built in one tuple (the pipeline's hot path)."""
    function, keys, args = command
    return ("FCALL", function, len(keys), *keys, *args)


def _optional(value: int | None) -> Argument:
    # '' tells the function to use its default (the plan's credit limit, the day of creation).
    return "" if value is None else value


class Calls:
    """The calls of one deployment (its partition count)."""

    def __init__(self, partitions: int) -> None:
        self.keys = Keys(partitions)

    def keys_of(
        self, function: str, account_id: str, gateway_id: str = "", session_id: str = "", idempotency_key: str = ""
    ) -> tuple[str, ...]:
        return self.keys.build(_BUILDERS[function], account_id, gateway_id, session_id, idempotency_key)

    def charge(
        self, request: ChargeLike, now_ms: int, actor: str, answer_format: AnswerFormat = AnswerFormat.JSON
    ) -> Command:
        account_id, gateway_id, session_id = request.account_id, request.gateway_id, request.session_id
        units = request.units[:]  # a list: see validation._check_units
        request_values: list[Argument] = [
            int(request.request_type),
            request.request_number,
            account_id,
            gateway_id,
            session_id,
            request.called_party,
            request.visited_plmn,
            len(units),
        ]
        for unit in units:
            request_values += (
                unit.rating_group,
                unit.service_id,
                unit.requested,
                unit.used,
                unit.used_after_tariff_change,
            )
        # one MessagePack word for the request (lua/functions/charge.lua): Redis and hiredis work per word
        keys = self.keys_of("charge", account_id, gateway_id, session_id)
        return "charge", keys, (now_ms, _REQUEST_ENCODER.encode(request_values), int(answer_format), actor)

    def quote_price(self, request: ChargeLike, now_ms: int) -> Command:
        """The price of a charge's units now (its session fields and used units play no part)."""
        unit_count = len(request.units)
        args: list[Argument] = [now_ms, request.account_id, request.called_party, request.visited_plmn, unit_count]
        for unit in request.units:
            args += (unit.rating_group, unit.service_id, unit.requested)
        return "quote_price", self.keys_of("quote_price", request.account_id), tuple(args)

    def release_orphan(self, account_id: str, gateway_id: str, session_id: str, now_ms: int, actor: str) -> Command:
        keys = self.keys_of("release_orphan", account_id, gateway_id, session_id)
        return "release_orphan", keys, (now_ms, account_id, gateway_id, session_id, actor)

    def create_account(self, new: NewAccount, now_ms: int, actor: str) -> Command:
        bucket_count = len(new.buckets)
        args: list[Argument] = [
            now_ms,
            new.account_id,
            new.plan,
            new.initial_balance,
            _optional(new.credit_limit),
            new.contact_name,
            new.contact_email,
            new.contact_phone,
            _optional(new.billing_cycle_day),
            bucket_count,
        ]
        for bucket in new.buckets:
            groups = ",".join(str(group) for group in bucket.rating_groups)
            args += (
                bucket.bucket_id,
                int(bucket.unit),
                bucket.amount,
                groups,
                bucket.expires_at_ms,
                bucket.priority,
                int(bucket.exhaustion_policy),
            )
        args += (new.dealer, actor)
        return "create_account", self.keys_of("create_account", new.account_id), tuple(args)

    def get_account(self, account_id: str, now_ms: int) -> Command:
        return "get_account", self.keys_of("get_account", account_id), (now_ms, account_id)

    def top_up(
        self, account_id: str, amount_minor: int, channel: str, idempotency_key: str, now_ms: int, actor: str
    ) -> Command:
        keys = self.keys_of("top_up", account_id, idempotency_key=idempotency_key)
        return "top_up", keys, (now_ms, account_id, amount_minor, channel, idempotency_key, actor)

    def adjust(
        self, account_id: str, amount_minor: int, reason: str, idempotency_key: str, now_ms: int, actor: str
    ) -> Command:
        keys = self.keys_of("adjust", account_id, idempotency_key=idempotency_key)
        return "adjust", keys, (now_ms, account_id, amount_minor, reason, idempotency_key, actor)

    def borrow(self, account_id: str, offer_id: str, idempotency_key: str, now_ms: int, actor: str) -> Command:
        keys = self.keys_of("borrow", account_id, idempotency_key=idempotency_key)
        return "borrow", keys, (now_ms, account_id, offer_id, idempotency_key, actor)

    def purchase_bundle(
        self, account_id: str, bundle_id: str, idempotency_key: str, now_ms: int, actor: str
    ) -> Command:
        keys = self.keys_of("purchase_bundle", account_id, idempotency_key=idempotency_key)
        return "purchase_bundle", keys, (now_ms, account_id, bundle_id, idempotency_key, actor)

    def set_status(self, account_id: str, status: int, reason: str, now_ms: int, actor: str) -> Command:
        return "set_status", self.keys_of("set_status", account_id), (now_ms, account_id, int(status), reason, actor)

    def set_credit_limit(self, account_id: str, credit_limit_minor: int | None, now_ms: int, actor: str) -> Command:
        args = (now_ms, account_id, _optional(credit_limit_minor), actor)
        return "set_credit_limit", self.keys_of("set_credit_limit", account_id), args

    def set_plan(self, account_id: str, plan: str, now_ms: int, actor: str) -> Command:
        return "set_plan", self.keys_of("set_plan", account_id), (now_ms, account_id, plan, actor)

    def set_preferences(self, account_id: str, preferences: PreferencesSpec, now_ms: int, actor: str) -> Command:
        p = preferences
        args = (
            now_ms,
            account_id,
            p.language,
            p.time_zone,
            ",".join(p.channels),
            int(p.marketing_opt_in),
            p.quiet_hours_start,
            p.quiet_hours_end,
            actor,
        )
        return "set_preferences", self.keys_of("set_preferences", account_id), args

    def list_ledger(self, account_id: str, limit: int, before_seq: int) -> Command:
        return "list_ledger", self.keys_of("list_ledger", account_id), (account_id, limit, before_seq)

    def advance_account(self, account_id: str, now_ms: int, actor: str) -> Command:
        return "advance_account", self.keys_of("advance_account", account_id), (now_ms, account_id, actor)

    def recompute_tier(self, account_id: str, now_ms: int, actor: str) -> Command:
        return "recompute_tier", self.keys_of("recompute_tier", account_id), (now_ms, account_id, actor)

    def claim_partition(self, partition: int, owner: str, lease_ms: int, role: str = "sweeper") -> Command:
        return "claim_partition", (partition_lease(partition, role),), (owner, lease_ms)

    def summarize_usage(
        self, account_id: str, cutoff_day: str, records: Sequence[SummaryRecordLike], actor: str
    ) -> Command:
        record_count = len(records)
        args: list[Argument] = [account_id, cutoff_day, record_count]
        for record in records:
            args += (
                record.record_id,
                record.time_ms,
                record.day,
                record.rating_group,
                record.unit,
                record.zone,
                record.destination,
                record.units,
                record.charged,
                int(record.recent),
            )
        args.append(actor)
        return "summarize_usage", self.keys_of("summarize_usage", account_id), tuple(args)

    def issue_sign_in_code(self, account_id: str, code_hash: str, now_ms: int, actor: str) -> Command:
        keys = self.keys_of("issue_sign_in_code", account_id)
        return "issue_sign_in_code", keys, (now_ms, account_id, code_hash, actor)

    def sign_in(self, account_id: str, code_hash: str, token_hash: str, now_ms: int, actor: str) -> Command:
        keys = self.keys_of("sign_in", account_id, idempotency_key=token_hash)
        return "sign_in", keys, (now_ms, account_id, code_hash, token_hash, actor)

    def sign_out(self, account_id: str, token_hash: str, actor: str) -> Command:
        return "sign_out", self.keys_of("sign_out", account_id, idempotency_key=token_hash), (account_id, actor)

    def create_group(self, group_id: str, currency: str, refill_minor: int, now_ms: int, actor: str) -> Command:
        return "create_group", self.keys_of("create_group", group_id), (now_ms, group_id, currency, refill_minor, actor)

    def record_agent_payment(self, agent_id: str, day: str, step: AgentPaymentStep, now_ms: int, actor: str) -> Command:
        """A step in an agent's day book (day: YYYY-MM-DD, the payment's day where the agent is)."""
        keys = self.keys_of("record_agent_payment", agent_id, idempotency_key=day)
        args = (
            now_ms,
            step.action,
            step.transaction_id,
            step.account_id,
            step.amount,
            step.paid_at_ms,
            step.daily_limit_minor,
            step.retention_s,
            step.ledger_seq,
            actor,
        )
        return "record_agent_payment", keys, args

    def top_up_group(
        self, group_id: str, amount_minor: int, channel: str, idempotency_key: str, now_ms: int, actor: str
    ) -> Command:
        keys = self.keys_of("top_up_group", group_id, idempotency_key=idempotency_key)
        return "top_up_group", keys, (now_ms, group_id, amount_minor, channel, idempotency_key, actor)

    def set_group_member(self, group_id: str, account_id: str, cap_minor: int, now_ms: int, actor: str) -> Command:
        keys = self.keys_of("set_group_member", group_id)
        return "set_group_member", keys, (now_ms, group_id, account_id, cap_minor, actor)

    def get_group(self, group_id: str, now_ms: int) -> Command:
        return "get_group", self.keys_of("get_group", group_id), (now_ms, group_id)

    def open_group_transfer(self, transfer: GroupTransferSpec, now_ms: int, actor: str) -> Command:
        keys = self.keys_of("open_group_transfer", transfer.group_id, idempotency_key=transfer.transfer_id)
        args = (
            now_ms,
            transfer.group_id,
            transfer.account_id,
            transfer.direction,
            transfer.amount,
            transfer.transfer_id,
            int(transfer.remove),
            actor,
        )
        return "open_group_transfer", keys, args

    def apply_group_transfer(self, transfer: GroupTransferSpec, now_ms: int, actor: str) -> Command:
        keys = self.keys_of("apply_group_transfer", transfer.account_id, idempotency_key=transfer.transfer_id)
        args = (
            now_ms,
            transfer.account_id,
            transfer.group_id,
            transfer.currency,
            transfer.direction,
            transfer.amount,
            transfer.transfer_id,
            transfer.refill_minor,
            int(transfer.remove),
            actor,
        )
        return "apply_group_transfer", keys, args

    def settle_group_transfer(
        self, group_id: str, transfer_id: str, amount_minor: int, now_ms: int, actor: str
    ) -> Command:
        keys = self.keys_of("settle_group_transfer", group_id, idempotency_key=transfer_id)
        return "settle_group_transfer", keys, (now_ms, group_id, transfer_id, amount_minor, actor)

    @staticmethod
    def voucher_key(code_hash: str) -> str:
        return KEY_PATTERNS["voucher"].format(idempotency_key=code_hash)

    def create_voucher(
        self, code_hash: str, amount_minor: int, currency: str, expires_at_ms: int, batch: str, now_ms: int, actor: str
    ) -> Command:
        args = (now_ms, code_hash, amount_minor, currency, expires_at_ms, batch, actor)
        return "create_voucher", (self.voucher_key(code_hash),), args

    def claim_voucher(self, code_hash: str, account_id: str, currency: str, now_ms: int, actor: str) -> Command:
        return "claim_voucher", (self.voucher_key(code_hash),), (now_ms, code_hash, account_id, currency, actor)

    def release_voucher(self, code_hash: str, account_id: str, actor: str) -> Command:
        return "release_voucher", (self.voucher_key(code_hash),), (code_hash, account_id, actor)

    @staticmethod
    def library_version() -> Command:
        return "library_version", (), ()
