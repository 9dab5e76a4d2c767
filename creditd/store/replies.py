"""Replies of the Lua functions: one shape, {code, message, body}, decoded in one place.

Every function replies {code, message, body}: code is a creditd.store.codes.Code, message names the
offending field when the call was refused ('replayed' when an idempotent call was repeated), body is
JSON or ''. A code other than SUCCESS becomes the exception of creditd.errors (error_for_code); charge
always answers SUCCESS with its ChargeAnswer in the body, whose own result carries the outcome.

The structs below decode the bodies. Field order of the array-like structs is the order lua/ writes
them; tests decode every function's replies through these, so a mismatch fails loudly.
"""

from __future__ import annotations

from typing import Any

import msgspec
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MovedError,
    OutOfMemoryError,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from creditd.errors import (
    AlreadyExists,
    CreditdError,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from creditd.store.codes import Code

REPLAYED = "replayed"

ERROR_BY_CODE: dict[Code, type[CreditdError]] = {
    Code.INVALID_REQUEST: InvalidArgument,
    Code.RATING_FAILED: InvalidArgument,
    Code.USER_UNKNOWN: NotFound,
    Code.ACCOUNT_EXISTS: AlreadyExists,
    Code.ACCOUNT_TERMINATED: FailedPrecondition,
    Code.CREDIT_LIMIT_REACHED: FailedPrecondition,
    Code.REFUSED: FailedPrecondition,
    Code.TOO_MANY: ResourceExhausted,
    Code.SESSION_ENDED: Unauthenticated,
}


# Replies that mean "Redis cannot serve this now", as opposed to a bug in a function.
TRANSIENT_REPLY_PREFIXES = ("LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS")


def classify_reply_error(error: Exception) -> CreditdError:
    text = str(error)
    if isinstance(error, (MovedError, AskError, TryAgainError)):
        return Unavailable(f"redis: slot {text} is moving between nodes; retry (calls are idempotent)")
    if type(error) is ClusterError:  # redis-py followed redirect_attempts redirects ("TTL exhausted")
        return Unavailable(f"redis: the slot kept moving ({text}); retry (calls are idempotent)")
    if isinstance(error, (ClusterDownError, SlotNotCoveredError, RedisConnectionError, RedisTimeoutError)):
        return Unavailable(f"redis: {type(error).__name__}: {text}")
    if isinstance(error, OutOfMemoryError) or text.startswith("OOM"):
        # maxmemory reached under noeviction: Redis refused to run a function that may write, so
        # nothing was written; reads (no-writes functions) still run. Not transient in seconds.
        return ResourceExhausted(
            "redis: out of memory (maxmemory reached; noeviction keeps every account): writes are refused "
            "until memory is freed or maxmemory raised, reads still work"
        )
    # redis-py's parser moves a known error code (READONLY, LOADING, ...) out of the text into status_code.
    code = getattr(error, "status_code", None) or ""
    if code.startswith(TRANSIENT_REPLY_PREFIXES) or text.startswith(TRANSIENT_REPLY_PREFIXES):
        return Unavailable(f"redis: {code} {text}" if code else f"redis: {text}")
    if "Function not found" in text:
        return Unavailable(f"redis: {text}")
    return Internal(f"redis function failed: {text}")


class Reply(msgspec.Struct, frozen=True):
    code: int
    message: str
    body: bytes

    @property
    def replayed(self) -> bool:
        return self.message == REPLAYED


def as_text(value: object) -> str:
    """A Redis reply's bytes (or anything else) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_reply(raw: Any) -> Reply:
    """The {code, message, body} of any function; Internal for anything else."""
    if type(raw) is not list or len(raw) != 3 or type(raw[0]) is not int:
        raise Internal(f"unexpected function reply: {raw!r:.200}")
    code, message, body = raw
    if type(body) is not bytes:
        body = as_text(body).encode()
    return Reply(code, message.decode() if type(message) is bytes else str(message), body)


_SUCCESS = int(Code.SUCCESS)
_REPLAYED_BYTES = REPLAYED.encode()


def success_answer(raw: Any) -> bytes | None:
    """A SUCCESS reply's body when the reply is one as the wire reads it (bytes); None for anything
    else, which checked_reply then decodes or refuses. decode_reply's general checks and a Reply made
    and read cost a charge some 4 000 instructions."""
    if type(raw) is list and len(raw) == 3 and raw[0] == _SUCCESS:
        body = raw[2]
        if type(body) is bytes and type(raw[1]) is bytes:
            return body
    return None


def success_body(raw: Any) -> tuple[bytes, bool] | None:
    """success_answer's body and whether it was replayed."""
    body = success_answer(raw)
    return None if body is None else (body, raw[1] == _REPLAYED_BYTES)


def error_for_code(code: int, message: str) -> CreditdError | None:
    """The exception for a function's code; None for SUCCESS."""
    if code == _SUCCESS:
        return None
    try:
        error_class = ERROR_BY_CODE.get(Code(code))
    except ValueError:
        error_class = None
    if error_class is None:
        return Internal(f"unexpected result code {code}: {message}")
    return error_class(message)


def checked_reply(raw: Any) -> Reply | CreditdError:
    """One pipelined call's outcome: its reply when SUCCESS, else the error it stands for. A failed
    call (an exception in the pipeline's results) stays the error it already is, or becomes one."""
    if type(raw) is not list:  # a function's reply is a list; the rarer cases are tested only here
        if isinstance(raw, CreditdError):
            return raw
        if isinstance(raw, RedisError):
            return classify_reply_error(raw)
        if isinstance(raw, BaseException):
            raise raw
    reply = decode_reply(raw)
    return error_for_code(reply.code, reply.message) or reply


class GrantRecord(msgspec.Struct, array_like=True, frozen=True):
    rating_group: int
    result: int
    unit: int
    granted: int
    validity_time_s: int
    final_unit_action: int
    redirect_url: str
    throttled: int
    max_bitrate_kbps: int
    charged: int
    # Absent from answers stored before the rating engine (a replay returns them unchanged).
    tariff: str = ""
    tariff_time_change_ms: int = 0
    quota_threshold: int = 0
    quota_holding_time_s: int = 0


class AnswerRecord(msgspec.Struct, array_like=True, frozen=True):
    result: int
    account_status: int
    error: str
    grants: list[GrantRecord]


class QuotedUnitRecord(msgspec.Struct, array_like=True, frozen=True):
    """One unit of quote_price: what `units` cost now (price_minor), at `tariff`; unit 0 when unpriced."""

    rating_group: int
    result: int
    unit: int
    units: int
    price_minor: int
    tariff: str


class QuoteRecord(msgspec.Struct, array_like=True, frozen=True):
    """quote_price's answer: SUCCESS when every unit was priced, else the first failure and why."""

    result: int
    currency: str
    error: str
    units: list[QuotedUnitRecord]


class BucketRecord(msgspec.Struct, array_like=True, frozen=True):
    bucket_id: str
    unit: int
    remaining: int
    reserved: int
    rating_groups: str
    expires_at_ms: int
    priority: int
    exhaustion_policy: int
    amount: int
    zones: str = "home"

    def rating_group_list(self) -> list[int]:
        return [int(group) for group in self.rating_groups.split(",")] if self.rating_groups else []

    def zone_list(self) -> list[str]:
        return self.zones.split(",")


class BonusInstalmentRecord(msgspec.Struct, array_like=True, frozen=True):
    bonus_id: str
    instalments_left: int
    instalment_minor: int
    next_at_ms: int


class GroupMemberRecord(msgspec.Struct, array_like=True, frozen=True):
    account_id: str
    cap_minor: int
    allocated_minor: int  # in the billing cycle of the call's now_ms


class PendingTransferRecord(msgspec.Struct, array_like=True, frozen=True):
    transfer_id: str
    direction: int  # 1 to the member, 2 back from it
    account_id: str
    amount_minor: int
    opened_at_ms: int
    remove: int


class GroupRecord(msgspec.Struct, frozen=True):
    """A shared wallet (lua/lib/group.lua group_json)."""

    group_id: str
    currency: str
    balance: int
    refill_minor: int
    billing_cycle_day: int
    ledger_seq: int
    members: list[GroupMemberRecord]
    pending: list[PendingTransferRecord]


class GroupTopUpRecord(msgspec.Struct, frozen=True):
    group: GroupRecord
    replayed: int
    ledger_seq: int


class TransferRecord(msgspec.Struct, frozen=True):
    """open_group_transfer's answer (replayed, settled) and apply_group_transfer's (replayed, ledger_seq)."""

    amount: int
    replayed: int
    settled: int = 0
    ledger_seq: int = 0


class GroupRefill(msgspec.Struct, frozen=True):
    group_id: str
    amount: int


class AdvanceRecord(msgspec.Struct, frozen=True):
    """advance_account's answer: a group member short of money asks for a refill."""

    status: int
    group_refill: GroupRefill | None = None


class PreferencesRecord(msgspec.Struct, frozen=True):
    """The preferences in force: the account's own, else its plan's defaults."""

    language: str
    time_zone: str
    # Comma-separated.
    channels: str
    marketing_opt_in: bool
    quiet_hours_start: str
    quiet_hours_end: str


class AccountRecord(msgspec.Struct, frozen=True):
    account_id: str
    plan: str
    currency: str
    status: int
    status_reason: str
    status_since_ms: int
    balance: int
    reserved: int
    credit_limit: int
    tier: str
    created_at_ms: int
    ledger_seq: int
    contact_name: str
    contact_email: str
    contact_phone: str
    dealer: str
    preferences: PreferencesRecord
    open_sessions: int
    credit_limit_override: bool
    billing_cycle_day: int
    # Money spent on data beyond bundles in the current billing cycle (Lua decides which is current).
    data_overage_spent_minor: int
    # The plan's monthly data overage spend cap (0: none).
    data_overage_cap_minor: int
    loan_outstanding: int
    # A shared wallet's member: its group and the part of its balance the group handed over.
    group_id: str
    group_holding: int
    reminders_sent: int
    next_status: int
    next_status_at_ms: int
    buckets: list[BucketRecord]
    bonus_instalments: list[BonusInstalmentRecord]

    # balance + credit_limit - reserved, as the functions count it.
    available: int


class AdjustRecord(msgspec.Struct, frozen=True):
    replayed: int
    ledger_seq: int
    balance: int


class TopUpRecord(msgspec.Struct, frozen=True):
    account: AccountRecord
    replayed: int
    ledger_seq: int


class LedgerEntryRecord(msgspec.Struct, array_like=True, frozen=True):
    seq: int
    time_ms: int
    kind: str
    amount: int
    balance_after: int
    reference: str
    actor: str


class TierResult(msgspec.Struct, frozen=True):
    """recompute_tier's body."""

    tier: str
    credit_limit: int
    average_topup_minor: int
    changed: int
    window_trimmed: int


class Released(msgspec.Struct, frozen=True):
    """release_orphan's body."""

    released: int
    charged: int


ANSWER_DECODER = msgspec.json.Decoder(AnswerRecord)
QUOTE_DECODER = msgspec.json.Decoder(QuoteRecord)
ACCOUNT_DECODER = msgspec.json.Decoder(AccountRecord)
TOP_UP_DECODER = msgspec.json.Decoder(TopUpRecord)
ADJUST_DECODER = msgspec.json.Decoder(AdjustRecord)
LEDGER_DECODER = msgspec.json.Decoder(list[LedgerEntryRecord])
TIER_RESULT_DECODER = msgspec.json.Decoder(TierResult)
RELEASED_DECODER = msgspec.json.Decoder(Released)
GROUP_DECODER = msgspec.json.Decoder(GroupRecord)
GROUP_TOP_UP_DECODER = msgspec.json.Decoder(GroupTopUpRecord)
TRANSFER_DECODER = msgspec.json.Decoder(TransferRecord)
ADVANCE_DECODER = msgspec.json.Decoder(AdvanceRecord)
