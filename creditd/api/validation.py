"""Edge validation of incoming messages: the first of the two checks (the Lua functions repeat them).

It matters beyond good errors: keys are built in Python from these ids, so an id is checked here
before any key is spelled with it. Every message names the offending field first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from creditd import contract
from creditd.config.fronts import CHANNELS, LANGUAGES
from creditd.config.limits import Limits
from creditd.contract import MAX_EXACT_INTEGER
from creditd.errors import InvalidArgument
from creditd.store.calls import ChargeSpec, UnitSpec
from creditd.store.codes import OPERATOR_REASONS
from creditd.v1 import creditd_pb2 as pb

ID_PATTERN = contract.ID.regex()
ID_MAX_LENGTH = contract.ID.max_length or 0
# Printable ASCII without space and braces (braces would confuse Redis Cluster hash tags).
SESSION_ID_PATTERN = contract.SESSION_ID.regex()
# A charge's account, gateway and session ids in one regex test (a space, in none of the rules'
# characters, between them): a test costs its call and its match object, and this runs for every
# charge. One that fails is tested again id by id, to name the field at fault.
CHARGE_IDS_PATTERN = re.compile(f"{ID_PATTERN.pattern} {ID_PATTERN.pattern} {SESSION_ID_PATTERN.pattern}")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# E.164: at most 15 digits (a leading "+" is allowed and dropped before this check); tested with
# str methods (ASCII digits: isdigit alone takes other scripts' digits), not a regex: every charge.
MAX_CALLED_PARTY_DIGITS = 15
VISITED_PLMN_DIGITS = (5, 6)
REQUEST_TYPES = frozenset(pb.ChargeRequest.RequestType.values()) - {0}
# Refused by range, in the Lua function's words: the types are contiguous.
FIRST_REQUEST_TYPE, LAST_REQUEST_TYPE = min(REQUEST_TYPES), max(REQUEST_TYPES)
assert frozenset(range(FIRST_REQUEST_TYPE, LAST_REQUEST_TYPE + 1)) == REQUEST_TYPES, "request types have a gap"
# Read once: an enum value looked up on a message class is a dictionary search each time.
INITIAL, TERMINATE, EVENT = pb.ChargeRequest.INITIAL, pb.ChargeRequest.TERMINATE, pb.ChargeRequest.EVENT
UNITS = frozenset(pb.Unit.values()) - {0}
ACCOUNT_STATUSES = frozenset(pb.AccountStatus.values()) - {0}
POLICIES = frozenset(pb.ExhaustionPolicy.values())


CURRENCY = re.compile(r"[A-Z]{3}")


def _refusal(rule: contract.TextRule, text: str, field: str, max_length: int) -> InvalidArgument:
    refusal = contract.refusal_of(rule, text, field, max_length)
    assert refusal is not None, f"{field}: the edge's regex refused what the contract's rule allows"
    return InvalidArgument(refusal)


# An id and a session id pass in one regex test (the rules' characters are ASCII, so a length in
# characters is one in bytes); contract.refusal_of spells the refusal, in the Lua side's words, only
# for one that fails: three ids a charge, and the rule looked up and hashed each time showed.
def check_id(value: str, field: str) -> None:
    if ID_PATTERN.fullmatch(value) is None:
        raise _refusal(contract.ID, value, field, ID_MAX_LENGTH)


def check_session_id(session_id: str, max_length: int) -> None:
    if len(session_id) > max_length or SESSION_ID_PATTERN.fullmatch(session_id) is None:
        raise _refusal(contract.SESSION_ID, session_id, "session_id", max_length)


def check_range(value: int, field: str, minimum: int, maximum: int) -> None:
    if not minimum <= value <= maximum:
        raise InvalidArgument(f"{field}: must be between {minimum} and {maximum}")


def check_free_text(value: str, field: str, maximum_length: int) -> None:
    if len(value.encode()) > maximum_length:
        raise InvalidArgument(f"{field}: longer than {maximum_length} bytes")
    if CONTROL_CHARACTERS.search(value):
        raise InvalidArgument(f"{field}: contains control characters")


def _check_units(request: ChargeSpec, limits: Limits) -> None:
    units = request.units
    if len(units) > limits.max_units_per_request:  # check_range's test, inline: every charge
        check_range(len(units), "units", 0, limits.max_units_per_request)
    kind, max_units = request.request_type, limits.max_units
    without_use = kind in (INITIAL, EVENT)
    terminate = kind == TERMINATE
    seen: set[int] = set()
    # One test per unit on the fields read once; the message (named field) is spelled only for a
    # unit that fails, by _refuse_unit: this runs for every charge.
    for index, unit in enumerate(units):
        rating_group, requested, used = unit.rating_group, unit.requested, unit.used
        if (
            rating_group in seen
            or not 0 <= requested <= max_units
            or not 0 <= used <= max_units
            or not 0 <= unit.used_after_tariff_change <= used
            or (used and without_use)
            or (requested and terminate)
        ):
            _refuse_unit(f"units[{index}]", unit, seen, kind, max_units)
        seen.add(rating_group)


def _refuse_unit(field: str, unit: UnitSpec, seen: set[int], kind: int, max_units: int) -> None:
    """Raises the refusal of a unit that failed _check_units' test, naming the first field at fault."""
    if unit.rating_group in seen:
        raise InvalidArgument(f"{field}.rating_group: appears twice in one request")
    check_range(unit.requested, f"{field}.requested", 0, max_units)
    check_range(unit.used, f"{field}.used", 0, max_units)
    if unit.used_after_tariff_change > unit.used or unit.used_after_tariff_change < 0:
        raise InvalidArgument(f"{field}.used_after_tariff_change: must be between 0 and used ({unit.used})")
    if unit.used and kind in (INITIAL, EVENT):
        raise InvalidArgument(f"{field}.used: must be 0 in INITIAL and EVENT requests")
    if unit.requested and kind == TERMINATE:
        raise InvalidArgument(f"{field}.requested: must be 0 in TERMINATE requests")
    raise AssertionError("_refuse_unit called for a unit that passes every check")


def valid_called_party(value: str) -> bool:
    digits = value.removeprefix("+")
    return len(digits) <= MAX_CALLED_PARTY_DIGITS and (not digits or (digits.isascii() and digits.isdigit()))


def valid_visited_plmn(value: str) -> bool:
    """MCC+MNC, or empty for the home network."""
    return not value or (len(value) in VISITED_PLMN_DIGITS and value.isascii() and value.isdigit())


def check_charge(request: ChargeSpec, limits: Limits) -> None:
    """A Charge's checks, on its fields read once (api/messages.charge_spec), in the order
    lua/functions/charge.lua takes them: a request with two faults is refused for the same one."""
    if not FIRST_REQUEST_TYPE <= request.request_type <= LAST_REQUEST_TYPE:  # check_range's test, inline
        check_range(request.request_type, "request_type", FIRST_REQUEST_TYPE, LAST_REQUEST_TYPE)
    session_id = request.session_id
    ids = f"{request.account_id} {request.gateway_id} {session_id}"
    if len(session_id) > limits.max_session_id_length or CHARGE_IDS_PATTERN.fullmatch(ids) is None:
        _refuse_ids(request, limits)
    if not valid_called_party(request.called_party):
        raise InvalidArgument("called_party: at most 15 digits (E.164), a leading + allowed")
    if not valid_visited_plmn(request.visited_plmn):
        raise InvalidArgument("visited_plmn: MCC+MNC, 5 or 6 digits, or empty for the home network")
    _check_units(request, limits)


def _refuse_ids(request: ChargeSpec, limits: Limits) -> None:
    """Raises the refusal of ids that failed check_charge's one test, naming the first at fault."""
    check_id(request.account_id, "account_id")
    check_id(request.gateway_id, "gateway_id")
    check_session_id(request.session_id, limits.max_session_id_length)
    raise AssertionError("_refuse_ids called for ids that pass every check")


def check_batch(requests: Sequence[pb.ChargeRequest], limits: Limits) -> None:
    if len(requests) > limits.max_batch_requests:
        raise InvalidArgument(f"requests: at most {limits.max_batch_requests} per batch, got {len(requests)}")


def _check_bucket(bucket: pb.Bucket, field: str, limits: Limits) -> None:
    check_id(bucket.bucket_id, f"{field}.bucket_id")
    if bucket.unit not in UNITS:
        raise InvalidArgument(f"{field}.unit: must be BYTES, SECONDS or EVENTS")
    check_range(bucket.remaining, f"{field}.remaining", 1, limits.max_units)
    check_range(bucket.reserved, f"{field}.reserved", 0, 0)
    if len(bucket.rating_groups) > limits.max_rating_groups_per_bucket:
        raise InvalidArgument(f"{field}.rating_groups: at most {limits.max_rating_groups_per_bucket}")
    check_range(bucket.expires_at_ms, f"{field}.expires_at_ms", 0, MAX_EXACT_INTEGER)
    if bucket.exhaustion_policy not in POLICIES:
        raise InvalidArgument(f"{field}.exhaustion_policy: unknown value {bucket.exhaustion_policy}")
    if bucket.unit == pb.BYTES and bucket.exhaustion_policy == pb.EXHAUSTION_POLICY_UNSPECIFIED:
        raise InvalidArgument(f"{field}.exhaustion_policy: required for BYTES buckets (CAP, THROTTLE or OVERAGE)")


def check_create_account(request: pb.CreateAccountRequest, limits: Limits) -> None:
    check_id(request.account_id, "account_id")
    check_id(request.plan, "plan")
    check_range(request.initial_balance, "initial_balance", 0, limits.max_amount_minor)
    if request.HasField("credit_limit"):
        check_range(request.credit_limit, "credit_limit", 0, limits.max_amount_minor)
    if request.HasField("billing_cycle_day"):
        check_range(request.billing_cycle_day, "billing_cycle_day", 1, 28)
    for name in ("name", "email", "phone"):
        check_free_text(getattr(request.contact, name), f"contact.{name}", limits.max_contact_field_length)
    if request.dealer:
        check_id(request.dealer, "dealer")
    if len(request.buckets) > limits.max_buckets_per_account:
        raise InvalidArgument(f"buckets: at most {limits.max_buckets_per_account}")
    for index, bucket in enumerate(request.buckets):
        _check_bucket(bucket, f"buckets[{index}]", limits)


def check_adjust(request: pb.AdjustRequest, limits: Limits) -> None:
    check_id(request.account_id, "account_id")
    check_range(request.amount, "amount", -limits.max_amount_minor, limits.max_amount_minor)
    if request.amount == 0:
        raise InvalidArgument("amount: must not be 0")
    if not request.reason:
        raise InvalidArgument("reason: must not be empty")
    check_free_text(request.reason, "reason", limits.max_contact_field_length)
    check_id(request.idempotency_key, "idempotency_key")


CLOCK_PATTERN = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")


def check_preferences(request: pb.SetPreferencesRequest) -> None:
    check_id(request.account_id, "account_id")
    p = request.preferences
    if p.language and p.language not in LANGUAGES:
        raise InvalidArgument(f"preferences.language: one of {', '.join(LANGUAGES)}")
    if p.time_zone:
        try:
            ZoneInfo(p.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidArgument(f"preferences.time_zone: unknown time zone {p.time_zone[:64]!r}") from None
    for channel in p.channels:
        if channel not in CHANNELS:
            raise InvalidArgument(f"preferences.channels: unknown channel {channel[:32]!r} ({', '.join(CHANNELS)})")
    if len(set(p.channels)) != len(p.channels):
        raise InvalidArgument("preferences.channels: a channel appears twice")
    for field in ("quiet_hours_start", "quiet_hours_end"):
        if getattr(p, field) and not CLOCK_PATTERN.fullmatch(getattr(p, field)):
            raise InvalidArgument(f"preferences.{field}: HH:MM, 00:00 to 23:59")
    if bool(p.quiet_hours_start) != bool(p.quiet_hours_end):
        raise InvalidArgument("preferences.quiet_hours_end: quiet_hours_start and quiet_hours_end go together")


def check_top_up(request: pb.TopUpRequest, limits: Limits) -> None:
    check_id(request.account_id, "account_id")
    check_range(request.amount, "amount", 1, limits.max_amount_minor)
    check_id(request.channel, "channel")
    check_id(request.idempotency_key, "idempotency_key")


def check_borrow(request: pb.BorrowRequest) -> None:
    check_id(request.account_id, "account_id")
    check_id(request.offer_id, "offer_id")
    check_id(request.idempotency_key, "idempotency_key")


def check_purchase_bundle(request: pb.PurchaseBundleRequest) -> None:
    check_id(request.account_id, "account_id")
    check_id(request.bundle_id, "bundle_id")
    check_id(request.idempotency_key, "idempotency_key")


def check_set_status(request: pb.SetStatusRequest) -> None:
    check_id(request.account_id, "account_id")
    if request.status not in ACCOUNT_STATUSES:
        raise InvalidArgument(f"status: unknown value {request.status}")
    if request.reason not in OPERATOR_REASONS:
        raise InvalidArgument(f"reason: must be one of {', '.join(OPERATOR_REASONS)}")


def check_set_credit_limit(request: pb.SetCreditLimitRequest, limits: Limits) -> None:
    check_id(request.account_id, "account_id")
    if request.HasField("credit_limit"):
        check_range(request.credit_limit, "credit_limit", 0, limits.max_amount_minor)


def check_set_plan(request: pb.SetPlanRequest) -> None:
    check_id(request.account_id, "account_id")
    check_id(request.plan, "plan")


def check_list_ledger(request: pb.ListLedgerRequest, limits: Limits) -> None:
    check_id(request.account_id, "account_id")
    check_range(request.limit, "limit", 0, limits.max_ledger_page)
    check_range(request.before_seq, "before_seq", 0, MAX_EXACT_INTEGER)


def check_create_group(request: pb.CreateGroupRequest, limits: Limits) -> None:
    check_id(request.group_id, "group_id")
    if not CURRENCY.fullmatch(request.currency):
        raise InvalidArgument("currency: an ISO 4217 code (three capital letters)")
    check_range(request.refill_amount, "refill_amount", 1, limits.max_amount_minor)


def check_top_up_group(request: pb.TopUpGroupRequest, limits: Limits) -> None:
    check_id(request.group_id, "group_id")
    check_range(request.amount, "amount", 1, limits.max_amount_minor)
    check_id(request.channel, "channel")
    check_id(request.idempotency_key, "idempotency_key")


def check_set_group_member(request: pb.SetGroupMemberRequest, limits: Limits) -> None:
    check_id(request.group_id, "group_id")
    check_id(request.account_id, "account_id")
    check_range(request.cap, "cap", 0, limits.max_amount_minor)


def check_group_member(request: pb.RemoveGroupMemberRequest) -> None:
    check_id(request.group_id, "group_id")
    check_id(request.account_id, "account_id")
