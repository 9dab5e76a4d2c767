"""Each Lua function on its own, called with FCALL past every edge check: every kind of bad argument
(number formats Lua's tonumber would accept, bounds, ids, argument counts) is refused with the field
named, and a refused call writes nothing (DUMP of every key before and after). The keys are built by
creditd.store.calls, as the server builds them; the arguments are written out here, so that each can
be made bad on its own. A charge's request values travel as one MessagePack array: its cases are
written as the words they once were and packed by charge_words (a decimal integer where the function
takes an integer, anything else as the text it is), beside cases only the packed form can carry
(fractions, booleans, nil, arrays, bytes that are no MessagePack array), and a session whose
fingerprint the version before stored (of the words) still replays. And the account's field list
(creditd/store/account_codec.py, from which the library's ACCOUNT_CODEC is generated) against real
accounts: a new account is one packed array holding exactly its fields (its optional ones at their
default); an account an older version wrote (a hash of text fields and `bucket:<id>` fields, or the
map of fields the version before wrote, without the fields added since) is read with their defaults,
left as it is by a read, and written as the array at its next save with every other field and bucket
as it was, the optional ones at their default. A bucket is packed as an array of its numbers and
texts; one stored as text (the version before) is read, and packed at the account's next save
whether or not the call changed it. Buckets serve exactly their own rating groups after more
distinct rating-groups texts than the library keeps sets of."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import zoneinfo
from collections.abc import Callable, Sequence
from typing import NamedTuple

import msgspec
import pytest
import redis

from creditd.config.settings import Settings
from creditd.resources import lua_directory
from creditd.store.account_codec import ACCOUNT_FIELDS, BUCKET_VALUES, BUCKETS_POSITION, POSITIONS, Saved
from creditd.store.account_record import bucket_text, read_account, stored_buckets
from creditd.store.calls import KEY_LAYOUTS, Calls
from creditd.store.codes import AnswerFormat, Code
from creditd.store.replies import ACCOUNT_DECODER, as_text
from tests.harness import as_older_array, dump

ACCOUNT = "66855550000"
GROUP = "family-1"
# Laid out by the group id, in the place of an account's (creditd.store.keys).
GROUP_FUNCTIONS = (
    "create_group",
    "top_up_group",
    "set_group_member",
    "open_group_transfer",
    "settle_group_transfer",
    "get_group",
)
NOW = "1790000000000"
# Strings that are not plain decimal integers; Lua's tonumber accepts most of them.
NOT_DECIMAL = ["", "1e3", "0x10", "nan", "inf", "-inf", " 1", "1.5", "+1", "--1", "1 ", "１"]
TOO_LARGE = ["9007199254740992", "123456789012345678"]
HASH, OTHER_HASH = "ab" * 32, "cd" * 32
NOT_HASHES = ["", "AB" * 32, "ab" * 31, "zz" * 32, "ab" * 33]
TOMORROW = str(int(NOW) + 86_400_000)


@pytest.fixture
def calls() -> Calls:
    return Calls(256)


# The positions, in a charge's words as the cases write them, of the request values that are texts.
CHARGE_TEXT_POSITIONS = frozenset({3, 4, 5, 6, 7})
DECIMAL = re.compile(r"-?[0-9]+")


def charge_words(words: Sequence[object], answer_format: object = AnswerFormat.JSON.value) -> list[object]:
    """now_ms, the request values packed (lua/functions/charge.lua), answer_format (JSON, which these
    tests read), actor: from the words the charge once took, each of its request values an integer
    where it takes one and written as a decimal."""
    values = [
        int(word)
        if position not in CHARGE_TEXT_POSITIONS and isinstance(word, str) and DECIMAL.fullmatch(word)
        else word
        for position, word in enumerate(words[1:-1], start=1)
    ]
    return [words[0], msgspec.msgpack.encode(values), answer_format, words[-1]]


@pytest.fixture
def call(redis_client: redis.Redis, calls: Calls) -> Callable[..., list[object]]:
    def run(function: str, args: list[object], ids: Ids | None = None) -> list[object]:
        key_list = KEYS_OF[function](calls, ids or Ids())
        words = charge_words(args) if function == "charge" else args
        return redis_client.fcall(function, len(key_list), *key_list, *words)

    return run


class Ids(NamedTuple):
    """What a function's keys are built from; the defaults are the ones these tests use."""

    account: str = ACCOUNT
    gateway: str = "gw1"
    session: str = "s1"
    topup_key: str = "key1"
    purchase_key: str = "pk1"
    partition: int = 0


def _keys_of(function: str) -> Callable[[Calls, Ids], list[str]]:
    def keys_of(calls: Calls, ids: Ids) -> list[str]:
        if function == "claim_partition":
            return list(calls.claim_partition(ids.partition, "owner", 1000)[1])
        idempotency_key = ids.purchase_key if function == "purchase_bundle" else ids.topup_key
        owner = GROUP if function in GROUP_FUNCTIONS else ids.account
        return list(calls.keys_of(function, owner, ids.gateway, ids.session, idempotency_key))

    return keys_of


KEYS_OF: dict[str, Callable[[Calls, Ids], list[str]]] = {
    function: _keys_of(function) for function, layout in KEY_LAYOUTS.items() if layout
}

VALID_ARGS = {
    "create_account": [
        NOW,
        ACCOUNT,
        "standard",
        "100000",
        "",
        "Name",
        "a@b.c",
        "+66",
        "",
        "1",
        "b1",
        "1",
        "5000000",
        "1,2",
        "0",
        "1",
        "1",
        "shop-42",
        "tester",
    ],
    "get_account": [NOW, ACCOUNT],
    # one unit: voice (rating group 2), no service id, 60 s, to a Thai number from home
    "quote_price": [NOW, ACCOUNT, "66812345678", "", "1", "2", "0", "60"],
    "top_up": [NOW, ACCOUNT, "500", "bank", "key1", "tester"],
    "adjust": [NOW, ACCOUNT, "-500", "goodwill refund reversed", "adj1", "tester"],
    "set_preferences": [NOW, ACCOUNT, "th", "Asia/Bangkok", "sms", "1", "22:00", "07:00", "tester"],
    "set_status": [NOW, ACCOUNT, "2", "ADMIN", "tester"],
    "list_ledger": [ACCOUNT, "10", "0"],
    "charge": [NOW, "1", "0", ACCOUNT, "gw1", "s1", "66812345678", "", "1", "1", "0", "0", "0", "0", "tester"],
    "release_orphan": [NOW, ACCOUNT, "gw1", "s1", "tester"],
    "advance_account": [NOW, ACCOUNT, "tester"],
    "set_credit_limit": [NOW, ACCOUNT, "5000", "tester"],
    "set_plan": [NOW, ACCOUNT, "standard", "tester"],
    "recompute_tier": [NOW, ACCOUNT, "tester"],
    "purchase_bundle": [NOW, ACCOUNT, "sms_50", "pk1", "tester"],
    "claim_partition": ["owner1", "1000"],
    # account_id, cutoff_day, record_count, one record (record_id, time_ms, day, rating_group, unit,
    # zone, destination, units, charged, recent), actor
    "borrow": [NOW, ACCOUNT, "emergency_10", "loan1", "tester"],
    "issue_sign_in_code": [NOW, ACCOUNT, HASH, "tester"],
    "sign_in": [NOW, ACCOUNT, HASH, OTHER_HASH, "tester"],
    "sign_out": [ACCOUNT, "tester"],
    "create_voucher": [NOW, HASH, "5000", "THB", TOMORROW, "batch-1", "tester"],
    "claim_voucher": [NOW, HASH, ACCOUNT, "THB", "tester"],
    "release_voucher": [HASH, ACCOUNT, "tester"],
    "create_group": [NOW, GROUP, "THB", "1000", "tester"],
    "top_up_group": [NOW, GROUP, "500", "bank", "key1", "tester"],
    "set_group_member": [NOW, GROUP, ACCOUNT, "3000", "tester"],
    # direction 1 (to the member), 500 asked, transfer key1, not removing
    "open_group_transfer": [NOW, GROUP, ACCOUNT, "1", "500", "key1", "0", "tester"],
    "settle_group_transfer": [NOW, GROUP, "key1", "500", "tester"],
    "get_group": [NOW, GROUP],
    # 500 to the member, its group's refill amount 1000, not leaving
    "apply_group_transfer": [NOW, ACCOUNT, GROUP, "THB", "1", "500", "key1", "1000", "0", "tester"],
    # a claim of 500 by an agent (laid out as an account) under a daily limit of 100000, kept one day
    "record_agent_payment": [NOW, "claim", "tx1", ACCOUNT, "500", NOW, "100000", "86400", "0", "tester"],
    "summarize_usage": [
        ACCOUNT,
        "20260901",
        "1",
        "1790000000000-0",
        NOW,
        "20260921",
        "2",
        "2",
        "home",
        "thailand",
        "60",
        "100",
        "1",
        "tester",
    ],
}

# (function, argument index, bad values, field named in the message)
NUMBER_FIELDS = [
    ("create_account", 0, "now_ms"),
    ("create_account", 3, "initial_balance"),
    ("create_account", 4, "credit_limit"),
    ("create_account", 8, "billing_cycle_day"),
    ("create_account", 9, "buckets"),
    ("create_account", 11, "buckets[0].unit"),
    ("create_account", 12, "buckets[0].remaining"),
    ("create_account", 14, "buckets[0].expires_at_ms"),
    ("create_account", 15, "buckets[0].priority"),
    ("create_account", 16, "buckets[0].exhaustion_policy"),
    ("get_account", 0, "now_ms"),
    ("quote_price", 0, "now_ms"),
    ("quote_price", 4, "units"),
    ("quote_price", 5, "units[0].rating_group"),
    ("quote_price", 6, "units[0].service_id"),
    ("quote_price", 7, "units[0].requested"),
    ("record_agent_payment", 0, "now_ms"),
    ("record_agent_payment", 4, "amount"),
    ("record_agent_payment", 5, "paid_at_ms"),
    ("record_agent_payment", 6, "daily_limit_minor"),
    ("record_agent_payment", 7, "retention_s"),
    ("record_agent_payment", 8, "ledger_seq"),
    ("top_up", 0, "now_ms"),
    ("top_up", 2, "amount"),
    ("adjust", 0, "now_ms"),
    ("set_preferences", 0, "now_ms"),
    ("set_preferences", 5, "marketing_opt_in"),
    ("adjust", 2, "amount"),
    ("set_status", 0, "now_ms"),
    ("set_status", 2, "status"),
    ("list_ledger", 1, "limit"),
    ("list_ledger", 2, "before_seq"),
    ("charge", 0, "now_ms"),
    ("charge", 1, "request_type"),
    ("charge", 2, "request_number"),
    ("charge", 8, "units"),
    ("charge", 9, "units[0].rating_group"),
    ("charge", 10, "units[0].service_id"),
    ("charge", 11, "units[0].requested"),
    ("charge", 12, "units[0].used"),
    ("charge", 13, "units[0].used_after_tariff_change"),
    ("release_orphan", 0, "now_ms"),
    ("purchase_bundle", 0, "now_ms"),
    ("advance_account", 0, "now_ms"),
    ("set_credit_limit", 0, "now_ms"),
    ("set_credit_limit", 2, "credit_limit"),
    ("set_plan", 0, "now_ms"),
    ("recompute_tier", 0, "now_ms"),
    ("claim_partition", 1, "lease_ms"),
    ("borrow", 0, "now_ms"),
    ("issue_sign_in_code", 0, "now_ms"),
    ("sign_in", 0, "now_ms"),
    ("create_voucher", 0, "now_ms"),
    ("create_voucher", 2, "amount"),
    ("create_voucher", 4, "expires_at_ms"),
    ("claim_voucher", 0, "now_ms"),
    ("summarize_usage", 2, "record_count"),
    ("summarize_usage", 4, "records[1].time_ms"),
    ("summarize_usage", 6, "records[1].rating_group"),
    ("summarize_usage", 7, "records[1].unit"),
    ("summarize_usage", 10, "records[1].units"),
    ("summarize_usage", 11, "records[1].charged"),
    ("summarize_usage", 12, "records[1].recent"),
    ("create_group", 0, "now_ms"),
    ("create_group", 3, "refill_minor"),
    ("top_up_group", 0, "now_ms"),
    ("top_up_group", 2, "amount"),
    ("set_group_member", 0, "now_ms"),
    ("set_group_member", 3, "cap_minor"),
    ("open_group_transfer", 0, "now_ms"),
    ("open_group_transfer", 3, "direction"),
    ("open_group_transfer", 4, "amount"),
    ("open_group_transfer", 6, "remove"),
    ("settle_group_transfer", 0, "now_ms"),
    ("settle_group_transfer", 3, "amount"),
    ("get_group", 0, "now_ms"),
    ("apply_group_transfer", 0, "now_ms"),
    ("apply_group_transfer", 4, "direction"),
    ("apply_group_transfer", 5, "amount"),
    ("apply_group_transfer", 7, "refill_minor"),
    ("apply_group_transfer", 8, "remove"),
]
OUT_OF_RANGE: dict[str | tuple[str, str], list[str]] = {
    "initial_balance": ["-1", "1000000000001"],
    "credit_limit": ["-1", "1000000000001"],
    "billing_cycle_day": ["0", "29"],
    "buckets": ["-1", "17"],
    "buckets[0].unit": ["0", "4"],
    "buckets[0].remaining": ["0"],
    "buckets[0].exhaustion_policy": ["0", "4"],
    "buckets[0].priority": ["4294967296"],
    "amount": ["0", "-5", "1000000000001"],
    ("adjust", "amount"): ["0", "1000000000001", "-1000000000001"],  # signed: -5 is a debit
    "status": ["0", "5"],
    "limit": ["0", "1001"],
    "before_seq": ["-1"],
    ("quote_price", "units"): ["0", "17"],
    "request_type": ["0", "5"],
    "request_number": ["-1", "4294967296"],
    "units[0].rating_group": ["-1", "4294967296"],
    "units[0].requested": ["-1", "1000000000000001"],
    "units[0].used": ["-1"],
    "units[0].service_id": ["-1", "4294967296"],
    "units[0].used_after_tariff_change": ["-1", "1"],  # above used (0)
    "marketing_opt_in": ["2", "-1"],
    "now_ms": ["-1"],
    "paid_at_ms": ["-1"],
    "daily_limit_minor": ["0", "1000000000000001"],
    "retention_s": ["86399", "31622401"],
    "ledger_seq": ["-1"],
    "lease_ms": ["99", "600001"],
    "record_count": ["0", "501"],
    ("create_voucher", "amount"): ["0", "1000000000001"],
    "expires_at_ms": [NOW, str(int(NOW) + 4 * 366 * 86_400_000)],
    "records[1].rating_group": ["-1", "4294967296"],
    "records[1].unit": ["0", "4"],
    "records[1].units": ["-1", "1000000000000001"],
    "records[1].charged": ["-1", "1000000000001"],
    "records[1].recent": ["2", "-1"],
    "refill_minor": ["0", "1000000000001"],
    "cap_minor": ["-1", "1000000000001"],
    "direction": ["0", "3"],
    "remove": ["2", "-1"],
    # 0 is a cancellation (settle) or a member joining (apply)
    ("settle_group_transfer", "amount"): ["-1", "1000000000001"],
    ("apply_group_transfer", "amount"): ["-1", "1000000000001"],
}
TEXT_FIELDS = [
    ("create_account", 1, "account_id", ["", "a b", "a{1}", "a" * 65]),
    ("create_account", 2, "plan", ["", "gold"]),
    ("create_account", 5, "contact.name", ["a\nb", "x" * 129]),
    ("create_account", 10, "buckets[0].bucket_id", ["", "b|1"]),
    ("create_account", 13, "buckets[0].rating_groups", ["1,,2", "a", "1,", ",1"]),
    ("get_account", 1, "account_id", ["", "a}b"]),
    ("quote_price", 1, "account_id", ["", "a b", "a" * 65]),
    ("quote_price", 2, "called_party", ["6a", "++66", "1234567890123456", " 66", "66 ", "６６"]),
    ("quote_price", 3, "visited_plmn", ["5200", "5200123", "52a01", " 52001"]),
    ("top_up", 1, "account_id", ["", "a b"]),
    ("top_up", 3, "channel", ["", "bank transfer"]),
    ("top_up", 4, "idempotency_key", ["", "k/1"]),
    ("set_status", 3, "reason", ["", "CREDIT", "admin"]),
    ("list_ledger", 0, "account_id", [""]),
    ("charge", 3, "account_id", ["", "a b"]),
    ("charge", 4, "gateway_id", ["", "g w"]),
    ("charge", 5, "session_id", ["", "s 1", "{s1}", "s" * 129]),
    ("release_orphan", 1, "account_id", ["", "a b"]),
    ("release_orphan", 2, "gateway_id", ["", "g/w"]),
    ("release_orphan", 3, "session_id", ["", "s 1"]),
    ("claim_partition", 0, "owner", ["", "a b"]),
    ("create_account", 18, "actor", ["", "a|b", "x" * 256]),
    ("create_account", 17, "dealer", ["shop 42", "a|b", "x" * 65]),
    ("adjust", 1, "account_id", ["", "a b"]),
    ("set_preferences", 1, "account_id", ["", "a b"]),
    ("set_preferences", 2, "language", ["de", "TH", "th "]),
    ("set_preferences", 3, "time_zone", ["Asia Bangkok", "x" * 65, "a|b"]),
    ("set_preferences", 4, "channels", ["fax", "sms,sms", "sms,", ",sms", "sms,,email"]),
    ("set_preferences", 6, "quiet_hours_start", ["22", "24:00", "7:00"]),
    ("set_preferences", 7, "quiet_hours_end", ["", "25:00"]),
    ("set_preferences", 8, "actor", ["", "a|b"]),
    ("adjust", 3, "reason", ["", "a\nb", "x" * 129]),
    ("adjust", 4, "idempotency_key", ["", "k/1"]),
    ("adjust", 5, "actor", ["", "a|b"]),
    ("top_up", 5, "actor", ["", "a|b"]),
    ("set_status", 4, "actor", ["", "a\nb"]),
    ("charge", 14, "actor", ["", "a|b"]),
    ("charge", 6, "called_party", ["6a", "++66", "1234567890123456", " 66", "66 ", "６６"]),
    ("charge", 7, "visited_plmn", ["5200", "5200123", "52a01", " 52001"]),
    ("release_orphan", 4, "actor", ["", "a|b"]),
    ("advance_account", 1, "account_id", ["", "a b"]),
    ("set_credit_limit", 1, "account_id", ["", "a b"]),
    ("set_credit_limit", 3, "actor", ["", "a|b"]),
    ("set_plan", 1, "account_id", ["", "a b"]),
    ("set_plan", 2, "plan", ["", "a b", "no_such_plan"]),
    ("set_plan", 3, "actor", ["", "a|b"]),
    ("recompute_tier", 1, "account_id", ["", "a{b}"]),
    ("recompute_tier", 2, "actor", ["", "a|b"]),
    ("advance_account", 2, "actor", ["", "a|b"]),
    ("purchase_bundle", 2, "bundle_id", ["", "a b", "no_such_bundle"]),
    ("purchase_bundle", 3, "idempotency_key", ["", "k/1"]),
    ("purchase_bundle", 4, "actor", ["", "a|b"]),
    ("borrow", 1, "account_id", ["", "a b"]),
    ("borrow", 2, "offer_id", ["", "a b", "no_such_offer"]),
    ("borrow", 3, "idempotency_key", ["", "k/1"]),
    ("borrow", 4, "actor", ["", "a|b"]),
    ("issue_sign_in_code", 1, "account_id", ["", "a b"]),
    ("issue_sign_in_code", 2, "code_hash", NOT_HASHES),
    ("issue_sign_in_code", 3, "actor", ["", "a|b"]),
    ("sign_in", 1, "account_id", ["", "a{b}"]),
    ("sign_in", 2, "code_hash", NOT_HASHES),
    ("sign_in", 3, "token_hash", NOT_HASHES),
    ("sign_in", 4, "actor", ["", "a|b"]),
    ("sign_out", 0, "account_id", ["", "a b"]),
    ("sign_out", 1, "actor", ["", "a|b"]),
    ("create_voucher", 1, "code_hash", NOT_HASHES),
    ("create_voucher", 3, "currency", ["", "thb", "TH", "THBX"]),
    ("create_voucher", 5, "batch", ["", "a b"]),
    ("create_voucher", 6, "actor", ["", "a|b"]),
    ("claim_voucher", 1, "code_hash", NOT_HASHES),
    ("claim_voucher", 2, "account_id", ["", "a b"]),
    ("claim_voucher", 3, "currency", ["", "thb"]),
    ("claim_voucher", 4, "actor", ["", "a|b"]),
    ("release_voucher", 0, "code_hash", NOT_HASHES),
    ("release_voucher", 1, "account_id", ["", "a b"]),
    ("release_voucher", 2, "actor", ["", "a|b"]),
    ("summarize_usage", 0, "account_id", ["", "a b"]),
    ("summarize_usage", 1, "cutoff_day", ["", "2026091", "2026-09-01", "20261301"]),
    ("summarize_usage", 3, "records[1].record_id", ["", "1790000000000", "a-0", "1-2-3"]),
    ("summarize_usage", 5, "records[1].day", ["", "2026092", "20269921"]),
    ("summarize_usage", 8, "records[1].zone", ["a b", "a:b", "x" * 65]),
    ("summarize_usage", 9, "records[1].destination", ["a b", "x" * 65]),
    ("summarize_usage", 13, "actor", ["", "a|b"]),
    ("create_group", 1, "group_id", ["", "a b", "a{b}", "g" * 65]),
    ("create_group", 2, "currency", ["", "thb", "TH"]),
    ("create_group", 4, "actor", ["", "a|b"]),
    ("top_up_group", 1, "group_id", ["", "a b"]),
    ("top_up_group", 3, "channel", ["", "a b"]),
    ("top_up_group", 4, "idempotency_key", ["", "k/1"]),
    ("top_up_group", 5, "actor", ["", "a|b"]),
    ("set_group_member", 1, "group_id", [""]),
    ("set_group_member", 2, "account_id", ["", "a b"]),
    ("set_group_member", 4, "actor", ["", "a|b"]),
    ("open_group_transfer", 1, "group_id", [""]),
    ("open_group_transfer", 2, "account_id", ["", "a b"]),
    ("open_group_transfer", 5, "transfer_id", ["", "k/1"]),
    ("open_group_transfer", 7, "actor", ["", "a|b"]),
    ("settle_group_transfer", 1, "group_id", [""]),
    ("settle_group_transfer", 2, "transfer_id", ["", "k/1"]),
    ("settle_group_transfer", 4, "actor", ["", "a|b"]),
    ("get_group", 1, "group_id", ["", "a b"]),
    ("apply_group_transfer", 1, "account_id", ["", "a b"]),
    ("apply_group_transfer", 2, "group_id", ["", "a b"]),
    ("apply_group_transfer", 3, "currency", ["", "thb"]),
    ("apply_group_transfer", 6, "transfer_id", ["", "k/1"]),
    ("apply_group_transfer", 9, "actor", ["", "a|b"]),
    ("record_agent_payment", 1, "action", ["", "claimed", "CLAIM"]),
    ("record_agent_payment", 2, "transaction_id", ["", "t/1", "total", "t" * 65]),
    ("record_agent_payment", 3, "account_id", ["", "a b"]),
    ("record_agent_payment", 9, "actor", ["", "a|b"]),
]


def bad_cases() -> list[tuple[str, int, str, str]]:
    cases = []
    for function, index, field in NUMBER_FIELDS:
        for value in NOT_DECIMAL + TOO_LARGE + OUT_OF_RANGE.get((function, field), OUT_OF_RANGE.get(field, [])):
            if field in ("credit_limit", "billing_cycle_day") and value == "":
                continue  # '' means the plan's default / the day of creation
            cases.append((function, index, value, field))
    for function, index, field, values in TEXT_FIELDS:
        cases += [(function, index, value, field) for value in values]
    return cases


def seed(call: Callable[..., list[object]], function: str = "") -> None:
    """The account the functions work on, a voucher (claim_voucher's), and but for create_group the
    group with the account as a member (settle_group_transfer's: with an open transfer key1)."""
    setup = ["create_account", "create_voucher"]
    if function in GROUP_FUNCTIONS and function != "create_group":
        setup += ["create_group", "set_group_member"]
    for step in setup:
        code, message, _ = call(step, VALID_ARGS[step])
        assert code == Code.SUCCESS, (step, message)
    if function == "settle_group_transfer":  # money, under another key than the transfer's
        top_up = list(VALID_ARGS["top_up_group"])
        top_up[4] = "seed-key"
        code, message, _ = call("top_up_group", top_up, Ids(topup_key="seed-key"))
        assert code == Code.SUCCESS, message
        code, message, _ = call("open_group_transfer", VALID_ARGS["open_group_transfer"])
        assert code == Code.SUCCESS, message


@pytest.mark.parametrize(("function", "index", "value", "field"), bad_cases())
def test_bad_argument_is_refused_and_writes_nothing(
    redis_client: redis.Redis, call: Callable, function: str, index: int, value: str, field: str
) -> None:
    if function != "create_account":
        seed(call, function)
    args = list(VALID_ARGS[function])
    args[index] = value
    before = dump(redis_client)
    reply = call(function, args)
    if function == "charge":
        assert reply[0] == Code.SUCCESS  # charge answers with the refusal as its answer's result
        answer = reply[2].decode()
        assert answer.startswith(f"[{Code.INVALID_REQUEST},"), answer
        assert f'"{field}:' in answer, answer
    else:
        code, message, _ = reply
        assert code == Code.INVALID_REQUEST, (code, message)
        assert message.decode().startswith(field + ":"), message
    assert dump(redis_client) == before


def test_buckets_serve_their_own_rating_groups_past_the_librarys_memory_of_them(
    redis_client: redis.Redis, calls: Calls
) -> None:
    """lib/account.lua builds the set a bucket's rating-groups text stands for once per text and
    keeps at most 1 024 texts: 1 100 accounts, each with a bucket of a text of its own, serving
    rating group 1 (even accounts) or not (odd ones), are charged for rating group 1 after the
    texts have filled it; each reserves from its bucket exactly when the bucket serves the group."""
    count = 1100

    pipe = redis_client.pipeline(transaction=False)
    for n in range(count):
        args = list(VALID_ARGS["create_account"])
        args[1], args[13] = f"bucket-{n}", f"{1 if n % 2 == 0 else 2},{100000 + n}"  # its bucket's rating groups
        keys = KEYS_OF["create_account"](calls, Ids(account=f"bucket-{n}"))
        pipe.fcall("create_account", len(keys), *keys, *args)
    assert [reply[0] for reply in pipe.execute()] == [Code.SUCCESS] * count
    for n in (0, 1, 2, count - 2, count - 1):
        args = list(VALID_ARGS["charge"])
        args[3], args[5] = f"bucket-{n}", f"s-{n}"
        keys = KEYS_OF["charge"](calls, Ids(account=f"bucket-{n}", session=f"s-{n}"))
        reply = redis_client.fcall("charge", len(keys), *keys, *charge_words(args))
        assert as_text(reply[2]).startswith(f"[{Code.SUCCESS},"), reply
        keys = KEYS_OF["get_account"](calls, Ids(account=f"bucket-{n}"))
        account = ACCOUNT_DECODER.decode(redis_client.fcall("get_account", len(keys), *keys, NOW, f"bucket-{n}")[2])
        assert (account.buckets[0].reserved > 0) == (n % 2 == 0), (n, account.buckets)


def test_gateway_ids_and_actors_are_checked_alike_past_the_librarys_memory_of_them(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    """lib/checks.lua remembers the gateway ids and actors that matched their pattern, at most 256:
    after 600 EVENTs, each from a gateway and an actor of its own (the memory filled and begun
    again), every one of them is charged again, and a bad gateway id or actor, or a good one too
    long, is still refused and writes nothing; so is a gateway id that is a remembered actor's text
    (an actor may hold a space, an id may not)."""
    seed(call)
    count = 600

    def event(gateway_id: object, actor: object, session: str) -> list[object]:
        keys = KEYS_OF["charge"](calls, Ids(gateway=str(gateway_id), session=session))
        words = [NOW, "4", "0", ACCOUNT, gateway_id, session, "66812345678", "", "1", "3", "0", "0", "0", "0", actor]
        return ["charge", len(keys), *keys, *charge_words(words)]

    for attempt in range(2):
        pipe = redis_client.pipeline(transaction=False)
        for n in range(count):
            pipe.fcall(*event(f"gw-{n}", f"node {n}", f"e{attempt}-{n}"))
        answers = [json.loads(as_text(reply[2])) for reply in pipe.execute()]
        assert all(answer[0] == Code.SUCCESS for answer in answers), answers[:3]
    for gateway_id, actor, expected in (
        ("g w", "node-1", "gateway_id: contains characters other than"),
        ("node 599", "node-1", "gateway_id: contains characters other than"),  # an actor remembered
        ("gw-1|", "node-1", "gateway_id: contains characters other than"),
        ("gw-1" + "x" * 61, "node-1", "gateway_id: longer than 64 characters"),
        (1, "node-1", "gateway_id: must be a string"),
        ("gw-1", "node|1", "actor: contains characters other than"),
        ("gw-1", "", "actor: must not be empty"),
    ):
        before = dump(redis_client)
        answer = json.loads(as_text(redis_client.fcall(*event(gateway_id, actor, "bad"))[2]))
        assert answer[0] == Code.INVALID_REQUEST and answer[2].startswith(expected), answer
        assert dump(redis_client) == before


def test_voice_grants_carry_the_tariff_change_past_the_librarys_memory_of_tariff_choices(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    """lib/tariffs.lua remembers until when each context's tariff choice holds, at most 4 096 of
    them: 4 200 calls, each with a service id of its own (a context of its own), opened at 21:55 in
    Bangkok and closed, each get the same grant, carrying the night tariff's start at 22:00, before
    and after the memory was begun again."""
    code, message, _ = call("create_account", VALID_ARGS["create_account"])
    assert code == Code.SUCCESS, message
    now_ms = int(datetime.datetime(2026, 9, 21, 21, 55, tzinfo=zoneinfo.ZoneInfo("Asia/Bangkok")).timestamp() * 1000)
    change_ms = now_ms + 5 * 60_000
    count, grants = 4200, set()
    for start in range(0, count, 500):
        pipe = redis_client.pipeline(transaction=False)
        for n in range(start, min(start + 500, count)):
            for kind, number in ((1, 0), (3, 1)):  # INITIAL, then TERMINATE
                args = [str(now_ms), str(kind), str(number), ACCOUNT, "gw1", f"v{n}", "66812345678", "", "1"]
                args += ["2", str(n), "0", "0", "0", "tester"]  # voice, service id n
                keys = KEYS_OF["charge"](calls, Ids(session=f"v{n}"))
                pipe.fcall("charge", len(keys), *keys, *charge_words(args))
        replies = pipe.execute()
        for reply in replies[0::2]:
            answer = json.loads(as_text(reply[2]))
            assert answer[0] == Code.SUCCESS, answer
            grants.add(tuple(answer[3][0][9:12]))  # charged, tariff, tariff_time_change_ms
    assert grants == {(0, "voice_out", change_ms)}


@pytest.mark.parametrize("function", sorted(VALID_ARGS))
def test_wrong_argument_count_is_refused(redis_client: redis.Redis, call: Callable, function: str) -> None:
    if function != "create_account":
        seed(call, function)
    before = dump(redis_client)
    for args in (VALID_ARGS[function][:-1], [*VALID_ARGS[function], "extra"]):
        reply = call(function, args)
        text = reply[2].decode() if function == "charge" else reply[1].decode()
        assert "arguments: expected" in text or "units" in text or "buckets" in text, text
    assert dump(redis_client) == before


@pytest.mark.parametrize("function", sorted(VALID_ARGS))
def test_valid_arguments_succeed(redis_client: redis.Redis, call: Callable, function: str) -> None:
    """The base argument lists above are valid, so each refusal is caused by its one bad value."""
    if function not in ("create_account", "create_voucher"):
        seed(call, function)
    reply = call(function, VALID_ARGS[function])
    assert reply[0] == Code.SUCCESS, reply
    if function == "charge":
        assert reply[2].decode().startswith(f"[{Code.SUCCESS},")
    if function == "release_orphan":
        assert reply[1] == b"not due"  # the session the seed did not open is not overdue either


# (position in the charge's words, field): what only a packed value can carry in place of an integer.
CHARGE_INTEGERS = [(1, "request_type"), (2, "request_number"), (8, "units"), (9, "units[0].rating_group")]
CHARGE_INTEGERS += [(10, "units[0].service_id"), (11, "units[0].requested"), (12, "units[0].used")]
CHARGE_INTEGERS += [(13, "units[0].used_after_tariff_change")]
NOT_INTEGERS: list[object] = [1.5, -0.5, float("nan"), float("inf"), float("-inf"), True, None, [1], {"a": 1}, "1"]
CHARGE_TEXTS = [(3, "account_id"), (4, "gateway_id"), (5, "session_id"), (6, "called_party"), (7, "visited_plmn")]
NOT_TEXTS: list[object] = [5, 0, 1.5, True, None, ["s1"], {"a": "b"}]


def refused_charge(redis_client: redis.Redis, calls: Calls, packed: bytes) -> str:
    """The refusal a charge of these packed request values answers with, checked to have written nothing."""
    before = dump(redis_client)
    keys = KEYS_OF["charge"](calls, Ids())
    reply = redis_client.fcall("charge", len(keys), *keys, NOW, packed, AnswerFormat.JSON.value, "tester")
    assert reply[0] == Code.SUCCESS  # the refusal is the answer's result
    answer = as_text(reply[2])
    assert answer.startswith(f"[{Code.INVALID_REQUEST},"), answer
    assert dump(redis_client) == before
    return str(json.loads(answer)[2])


@pytest.mark.parametrize(
    ("position", "field", "value"),
    [(position, field, value) for position, field in CHARGE_INTEGERS for value in NOT_INTEGERS]
    + [(position, field, value) for position, field in CHARGE_TEXTS for value in NOT_TEXTS],
)
def test_a_packed_charge_value_of_the_wrong_kind_is_refused_and_writes_nothing(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls, position: int, field: str, value: object
) -> None:
    """A nil leaves a hole in Lua's table, and where the array ends is then Lua's choice: the values'
    count may be what is refused instead of the field; a text field's nil is refused as empty."""
    seed(call)
    values = msgspec.msgpack.decode(charge_words(VALID_ARGS["charge"])[1])
    values[position - 1] = value
    message = refused_charge(redis_client, calls, msgspec.msgpack.encode(values))
    expected = f"{field}: must be an integer" if (position, field) in CHARGE_INTEGERS else f"{field}: must be a string"
    if value is None and message.startswith("arguments: expected 13 request_values for 1 units"):
        return
    if value is None and (position, field) in CHARGE_TEXTS and field.endswith("_id"):
        expected = f"{field}: must not be empty"
    assert message == expected, message


def test_request_values_that_are_not_one_messagepack_array_are_refused_and_write_nothing(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls, settings: Settings
) -> None:
    """ARGV[2] must be exactly one MessagePack array within the bound its header states; the values'
    count must be the one its units count gives."""
    seed(call)
    limits = settings.limits
    maximum_bytes = 256 + limits.max_session_id_length + 45 * limits.max_units_per_request
    _, valid, answer_format, actor = charge_words(VALID_ARGS["charge"])
    assert isinstance(valid, bytes)
    values = msgspec.msgpack.decode(valid)
    keys = KEYS_OF["charge"](calls, Ids())
    cases = {
        b"": "request_values: must be one MessagePack array",
        b"\xc1": "request_values: must be one MessagePack array",  # a byte MessagePack never uses
        valid[:-1]: "request_values: must be one MessagePack array",  # cut short
        valid + b"\x00": "request_values: must be one MessagePack array",  # a second value after it
        msgspec.msgpack.encode(5): "request_values: must be one MessagePack array",
        msgspec.msgpack.encode("x" * 20): "request_values: must be one MessagePack array",
        msgspec.msgpack.encode(["x" * maximum_bytes]): f"request_values: longer than {maximum_bytes} bytes",
        msgspec.msgpack.encode(values[:-1]): "arguments: expected 13 request_values for 1 units, got 12",
        msgspec.msgpack.encode([*values, 0]): "arguments: expected 13 request_values for 1 units, got 14",
        msgspec.msgpack.encode([]): "request_type: must be an integer",
    }
    for packed, expected in cases.items():
        assert refused_charge(redis_client, calls, packed) == expected, packed
    for words in ([NOW, valid, actor], [NOW, valid, answer_format, actor, "extra"]):
        answer = json.loads(as_text(redis_client.fcall("charge", len(keys), *keys, *words)[2]))
        assert answer[2] == f"arguments: expected 4, got {len(words)}", answer


def test_a_retransmission_fingerprinted_as_the_version_before_did_still_replays(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    """A session holds its last request's fingerprint: the SHA-1 of the packed request values now,
    of the words joined by newlines (now_ms and actor left out) before. A session written before the
    upgrade holds the latter: its retransmission replays the stored answer, and a request of the same
    number with other values is refused as before."""
    seed(call)
    code, message, answer = call("charge", VALID_ARGS["charge"])
    assert (code, message) == (Code.SUCCESS, b""), message
    key = calls.keys.session(ACCOUNT, "gw1", "s1")
    stored = msgspec.msgpack.decode(redis_client.get(key))
    fingerprint = hashlib.sha1(charge_words(VALID_ARGS["charge"])[1]).hexdigest()  # noqa: S324 (not security)
    assert stored.count(fingerprint) == 1, stored
    words_fingerprint = hashlib.sha1("\n".join(VALID_ARGS["charge"][1:-1]).encode()).hexdigest()  # noqa: S324
    redis_client.set(key, msgspec.msgpack.encode([words_fingerprint if v == fingerprint else v for v in stored]))
    assert call("charge", VALID_ARGS["charge"]) == [Code.SUCCESS, b"replayed", answer]
    other = list(VALID_ARGS["charge"])
    other[11] = "5"  # requested
    refused = json.loads(as_text(call("charge", other)[2]))
    assert refused[2] == "request_number: already applied with a different payload", refused


def test_every_function_has_argument_cases_here() -> None:
    shipped = {path.stem for path in (lua_directory() / "functions").glob("*.lua")}
    assert shipped - {"library_version"} == set(VALID_ARGS) == set(KEYS_OF)


def test_unknown_account_is_refused_by_every_function_and_writes_nothing(
    redis_client: redis.Redis, call: Callable
) -> None:
    before = dump(redis_client)
    account_functions = (
        "get_account",
        "quote_price",
        "top_up",
        "set_status",
        "list_ledger",
        "purchase_bundle",
        "set_credit_limit",
        "set_plan",
        "recompute_tier",
        "advance_account",
        "issue_sign_in_code",
        "borrow",
    )
    for function in account_functions:
        code, message, _ = call(function, VALID_ARGS[function])
        assert (code, message.decode()) == (Code.USER_UNKNOWN, "account_id: unknown account")
    assert call("charge", VALID_ARGS["charge"])[2].decode().startswith(f"[{Code.USER_UNKNOWN},")
    assert dump(redis_client) == before


def test_balance_ceiling_is_enforced(redis_client: redis.Redis, call: Callable) -> None:
    seed(call)
    args = list(VALID_ARGS["top_up"])
    for n in range(1000):
        args[2], args[4] = "1000000000000", f"k{n}"
        key_list = list(Calls(256).keys_of("top_up", ACCOUNT, idempotency_key=f"k{n}"))
        code, message, _ = redis_client.fcall("top_up", len(key_list), *key_list, *args)
        if code != Code.SUCCESS:
            assert message.decode().startswith("amount: would take the balance above"), message
            break
    else:
        pytest.fail("the balance ceiling was never reached")


OPTIONAL = {field.name for field in ACCOUNT_FIELDS if field.saved is Saved.OPTIONAL}
DEFAULTED = {field.name: field.default for field in ACCOUNT_FIELDS if field.default is not None}


def stored_account(redis_client: redis.Redis, calls: Calls) -> dict[str, str]:
    return read_account(redis_client, calls.keys.account(ACCOUNT))


def test_a_new_account_is_packed_with_the_listed_fields_but_the_optional_ones(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    code, message, _ = call("create_account", VALID_ARGS["create_account"])
    assert code == Code.SUCCESS, message
    assert redis_client.type(calls.keys.account(ACCOUNT)) == b"string"
    stored = {name for name in stored_account(redis_client, calls) if not name.startswith("bucket:")}
    assert stored == {field.name for field in ACCOUNT_FIELDS} - OPTIONAL - {"preferences"}


def test_a_new_account_is_an_array_of_its_bucket_count_every_field_and_each_buckets_values(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    code, message, _ = call("create_account", VALID_ARGS["create_account"])
    assert code == Code.SUCCESS, message
    stored = msgspec.msgpack.decode(redis_client.get(calls.keys.account(ACCOUNT)))
    # VALID_ARGS' account has one bucket, b1
    assert isinstance(stored, list) and len(stored) == 1 + len(ACCOUNT_FIELDS) + len(BUCKET_VALUES)
    assert stored[BUCKETS_POSITION - 1] == 1
    assert stored[POSITIONS["account_id"] - 1] == ACCOUNT
    assert stored[1 + len(ACCOUNT_FIELDS) :] == ["b1", 1, 5_000_000, 0, 0, 1, 1, 5_000_000, "1,2", "home"]
    for name in OPTIONAL:
        assert stored[POSITIONS[name] - 1] == DEFAULTED[name], name


def write_as_older_map(redis_client: redis.Redis, calls: Calls, fields: dict[str, str]) -> None:
    """The account as the version before wrote it: a MessagePack map of its fields, numbers as
    integers, `buckets` mapping bucket ids to their text."""
    numbers = {field.name for field in ACCOUNT_FIELDS if field.number}
    stored: dict[str, object] = {
        name: int(value) if name in numbers else value
        for name, value in fields.items()
        if not name.startswith("bucket:")
    }
    stored["buckets"] = {
        name.removeprefix("bucket:"): text for name, text in fields.items() if name.startswith("bucket:")
    }
    redis_client.set(calls.keys.account(ACCOUNT), msgspec.msgpack.encode(stored))


def test_an_older_map_account_reads_with_defaults_and_saves_as_an_array(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    code, message, _ = call("create_account", VALID_ARGS["create_account"])
    assert code == Code.SUCCESS, message
    before = stored_account(redis_client, calls)
    older = [name for name in DEFAULTED if name in before and name != "dealer"]
    write_as_older_map(redis_client, calls, {name: value for name, value in before.items() if name not in older})
    key = calls.keys.account(ACCOUNT)
    written = redis_client.get(key)
    code, message, card = call("get_account", VALID_ARGS["get_account"])
    assert code == Code.SUCCESS, message
    assert f'"balance":{before["balance"]}' in as_text(card)
    assert redis_client.get(key) == written  # a read writes nothing
    code, message, _ = call("top_up", VALID_ARGS["top_up"])
    assert code == Code.SUCCESS, message
    assert isinstance(msgspec.msgpack.decode(redis_client.get(key)), list)
    after = stored_account(redis_client, calls)
    for name in older:
        assert name in after, name
    assert int(after["balance"]) == int(before["balance"]) + int(VALID_ARGS["top_up"][2])
    moved = {"balance", "ledger_seq", "ledger_hash", *older}
    unchanged = {name: value for name, value in before.items() if name not in moved}
    assert {name: after[name] for name in unchanged} == unchanged  # the buckets among them


def test_an_older_shorter_array_reads_with_defaults_and_saves_every_field(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    """An array written before its last fields existed (the version before's, with the buckets first;
    read value by value after its header, as ACCOUNT_CODEC.read does for this version's): they take
    their defaults, and the next save writes every field."""
    code, message, _ = call("create_account", VALID_ARGS["create_account"])
    assert code == Code.SUCCESS, message
    key = calls.keys.account(ACCOUNT)
    full = msgspec.msgpack.decode(redis_client.get(key))
    newest = [field.name for field in ACCOUNT_FIELDS[-len(OPTIONAL) :]]
    assert set(newest) == OPTIONAL, "the optional fields are the newest, at the end"
    shorter = as_older_array(full, stored_buckets(full))[: -len(OPTIONAL)]
    assert len(shorter) >= 16, "still an array with a 3-byte header"
    redis_client.set(key, msgspec.msgpack.encode(shorter))
    code, message, card = call("get_account", VALID_ARGS["get_account"])
    assert code == Code.SUCCESS, message
    assert f'"balance":{full[POSITIONS["balance"] - 1]}' in as_text(card)
    code, message, _ = call("top_up", VALID_ARGS["top_up"])
    assert code == Code.SUCCESS, message
    after = msgspec.msgpack.decode(redis_client.get(key))
    assert len(after) == len(full)
    assert [after[POSITIONS[name] - 1] for name in newest] == [DEFAULTED[name] for name in newest]
    assert after[POSITIONS["balance"] - 1] == full[POSITIONS["balance"] - 1] + int(VALID_ARGS["top_up"][2])


def test_an_account_neither_the_array_nor_a_map_is_corrupt(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    """ACCOUNT_CODEC.read takes the array (a 3-byte header: every array written held more than 15
    values) or the older map; a short array, which no version wrote, is a corrupt account."""
    code, message, _ = call("create_account", VALID_ARGS["create_account"])
    assert code == Code.SUCCESS, message
    key = calls.keys.account(ACCOUNT)
    redis_client.set(key, msgspec.msgpack.encode(msgspec.msgpack.decode(redis_client.get(key))[:15]))
    with pytest.raises(redis.ResponseError, match="corrupt account"):
        call("get_account", VALID_ARGS["get_account"])


def test_an_array_whose_length_does_not_fit_its_bucket_count_is_corrupt(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    """The array's first value counts the buckets whose values follow the fields: a count the array's
    length does not hold (a bucket's value lost, a count too high or too low) is refused as corrupt,
    not read askew."""
    code, message, _ = call("create_account", VALID_ARGS["create_account"])
    assert code == Code.SUCCESS, message
    key = calls.keys.account(ACCOUNT)
    stored = msgspec.msgpack.decode(redis_client.get(key))
    for broken in (stored[:-1], [2, *stored[1:]], [0, *stored[1:]]):
        redis_client.set(key, msgspec.msgpack.encode(broken))
        with pytest.raises(redis.ResponseError, match="corrupt (account|bucket)"):
            call("get_account", VALID_ARGS["get_account"])


def test_an_account_of_the_version_before_charges_and_is_written_with_its_buckets_after_its_fields(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    """The version before held the buckets first, a map of bucket id to an array of the values after
    the id: such an account reads as its twin in today's form does (the card, byte for byte), charges
    from the same bucket, and is written in today's form with every bucket."""
    for function in ("create_account", "purchase_bundle"):
        code, message, _ = call(function, VALID_ARGS[function])
        assert code == Code.SUCCESS, message
    key = calls.keys.account(ACCOUNT)
    stored = msgspec.msgpack.decode(redis_client.get(key))
    buckets = stored_buckets(stored)
    assert len(buckets) == 2 and all(isinstance(bucket, list) and len(bucket) == 9 for bucket in buckets.values())
    _, _, card = call("get_account", VALID_ARGS["get_account"])
    redis_client.set(key, msgspec.msgpack.encode(as_older_array(stored, buckets)))
    _, _, older_card = call("get_account", VALID_ARGS["get_account"])
    assert older_card == card
    reply = call("charge", [NOW, "1", "0", ACCOUNT, "gw1", "s1", "", "", "1", "1", "0", "1000", "0", "0", "tester"])
    assert reply[2].decode().startswith(f"[{Code.SUCCESS},"), reply
    after = msgspec.msgpack.decode(redis_client.get(key))
    assert after[BUCKETS_POSITION - 1] == 2 and len(after) == 1 + len(ACCOUNT_FIELDS) + 2 * len(BUCKET_VALUES)
    charged = stored_buckets(after)
    assert charged["b1"] == [1, 5_000_000, 1_000, 0, 1, 1, 5_000_000, "1,2", "home"]  # reserved from the bucket
    assert {bucket_id: bucket for bucket_id, bucket in charged.items() if bucket_id != "b1"} == {
        bucket_id: bucket for bucket_id, bucket in buckets.items() if bucket_id != "b1"
    }


def test_a_bucket_no_call_changed_is_written_back_as_the_bytes_it_was_read_from(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    """lib/account.lua's pack_bucket writes a loaded bucket whose remaining and reserved are as loaded
    back as the bytes it was read from, and packs a changed one anew. Told apart here by bytes of
    another form with the same values: the SMS bundle's `amount` stored as a MessagePack float. A data
    charge reserves from b1 and not from the bundle: after it the bundle still holds the float, b1
    holds its new reservation packed as integers; an SMS EVENT then changes the bundle, which is
    packed anew."""
    for function in ("create_account", "purchase_bundle"):
        code, message, _ = call(function, VALID_ARGS[function])
        assert code == Code.SUCCESS, message
    key = calls.keys.account(ACCOUNT)
    stored = msgspec.msgpack.decode(redis_client.get(key))
    (bundle_id,) = [bucket_id for bucket_id in stored_buckets(stored) if bucket_id.startswith("sms_50")]
    amount_position = stored.index(bundle_id) + 1 + BUCKET_VALUES.index("amount") - 1
    stored[amount_position] = float(stored[amount_position])
    redis_client.set(key, msgspec.msgpack.encode(stored))

    def bucket_values() -> dict[str, object]:
        return stored_buckets(msgspec.msgpack.decode(redis_client.get(key)))

    data = [NOW, "1", "0", ACCOUNT, "gw1", "s1", "", "", "1", "1", "0", "1000", "0", "0", "tester"]
    assert as_text(call("charge", data)[2]).startswith(f"[{Code.SUCCESS},")
    buckets = bucket_values()
    assert isinstance(buckets[bundle_id][BUCKET_VALUES.index("amount") - 1], float), buckets[bundle_id]
    assert buckets["b1"][BUCKET_VALUES.index("reserved") - 1] == 1000
    sms = [NOW, "4", "0", ACCOUNT, "gw1", "e1", "66812345678", "", "1", "3", "0", "0", "0", "0", "tester"]
    assert as_text(call("charge", sms, Ids(session="e1"))[2]).startswith(f"[{Code.SUCCESS},")
    bundle = bucket_values()[bundle_id]
    assert isinstance(bundle, list) and not any(isinstance(value, float) for value in bundle), bundle
    assert bundle[BUCKET_VALUES.index("remaining") - 1] == bundle[BUCKET_VALUES.index("amount") - 1] - 1


def test_a_session_of_another_length_is_refused_as_corrupt_writing_nothing(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    """SESSION_CODEC reads an open session's values after its 1-byte array header: an array of
    another length is a corrupt session, not a session of shifted fields."""
    code, message, _ = call("create_account", VALID_ARGS["create_account"])
    assert code == Code.SUCCESS, message
    code, message, _ = call("charge", VALID_ARGS["charge"])
    assert code == Code.SUCCESS, message
    key = calls.keys.session(ACCOUNT, "gw1", "s1")
    stored = msgspec.msgpack.decode(redis_client.get(key))
    assert stored[2] == "open", stored
    redis_client.set(key, msgspec.msgpack.encode(stored[:-1]))  # no prepaid units: nine values
    before = dump(redis_client)
    update = [NOW, "2", "1", *VALID_ARGS["charge"][3:9], "1", "0", "0", "10", "0", "tester"]
    with pytest.raises(redis.ResponseError, match="corrupt session"):
        call("charge", update)
    assert dump(redis_client) == before


def test_json_texts_stay_right_past_the_bound_of_those_kept(
    redis_client: redis.Redis, call: Callable[..., list[object]]
) -> None:
    """lib/numbers.lua keeps the JSON text of short strings, 1 024 at most, begun again when full:
    1 100 accounts named apart, each card still shows its own name (the first, kept before the new
    beginning, and the last, after it)."""
    count = 1100
    for number in range(count):
        account_id = f"6681{number:07d}"
        args = [
            NOW,
            account_id,
            *VALID_ARGS["create_account"][2:5],
            f"Name {number}",
            *VALID_ARGS["create_account"][6:],
        ]
        code, message, _ = call("create_account", args, Ids(account=account_id))
        assert code == Code.SUCCESS, message
    for number in (0, count - 1, 0):
        account_id = f"6681{number:07d}"
        code, message, card = call("get_account", [NOW, account_id], Ids(account=account_id))
        assert code == Code.SUCCESS, message
        assert f'"Name {number}"' in as_text(card)


def buckets_stored(redis_client: redis.Redis, calls: Calls) -> dict[str, object]:
    return stored_buckets(msgspec.msgpack.decode(redis_client.get(calls.keys.account(ACCOUNT))))


def test_a_new_bucket_is_packed_as_an_array_of_its_numbers_and_texts(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    code, message, _ = call("create_account", VALID_ARGS["create_account"])
    assert code == Code.SUCCESS, message
    # VALID_ARGS' bucket b1: bytes, 5 000 000, rating groups 1 and 2, no expiry, priority 1, policy 1
    assert buckets_stored(redis_client, calls) == {"b1": [1, 5_000_000, 0, 0, 1, 1, 5_000_000, "1,2", "home"]}


def test_buckets_stored_as_text_are_read_and_packed_at_the_next_save(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    """Before buckets were packed, the account's array held each as '<unit>|<remaining>|...' text."""
    for function in ("create_account", "purchase_bundle"):
        code, message, _ = call(function, VALID_ARGS[function])
        assert code == Code.SUCCESS, message
    texts = {bucket_id: bucket_text(bucket) for bucket_id, bucket in buckets_stored(redis_client, calls).items()}
    assert len(texts) == 2 and all(text.count("|") == 8 for text in texts.values())
    key = calls.keys.account(ACCOUNT)
    stored = msgspec.msgpack.decode(redis_client.get(key))
    redis_client.set(key, msgspec.msgpack.encode(as_older_array(stored, texts)))
    written = redis_client.get(key)
    code, message, card = call("get_account", VALID_ARGS["get_account"])
    assert code == Code.SUCCESS, message
    assert redis_client.get(key) == written  # a read writes nothing
    code, message, _ = call("top_up", VALID_ARGS["top_up"])  # changes no bucket
    assert code == Code.SUCCESS, message
    packed = buckets_stored(redis_client, calls)
    assert all(isinstance(bucket, list) for bucket in packed.values()), packed
    assert {bucket_id: bucket_text(bucket) for bucket_id, bucket in packed.items()} == texts
    stored = msgspec.msgpack.decode(redis_client.get(key))
    redis_client.set(key, msgspec.msgpack.encode(as_older_array(stored, texts)))
    reply = call("charge", [NOW, "1", "0", ACCOUNT, "gw1", "s1", "", "", "1", "1", "0", "1000", "0", "0", "tester"])
    assert reply[2].decode().startswith(f"[{Code.SUCCESS},"), reply
    packed = buckets_stored(redis_client, calls)
    assert packed["b1"] == [1, 5_000_000, 1_000, 0, 1, 1, 5_000_000, "1,2", "home"]  # reserved from the bucket
    assert all(isinstance(bucket, list) for bucket in packed.values()), packed
    assert {bucket_id: bucket_text(bucket) for bucket_id, bucket in packed.items() if bucket_id != "b1"} == {
        bucket_id: text for bucket_id, text in texts.items() if bucket_id != "b1"
    }


def write_as_older_hash(redis_client: redis.Redis, calls: Calls, fields: dict[str, str]) -> None:
    """The account as a version before packing wrote it: a hash of its fields as text, a field
    `bucket:<id>` per bucket."""
    key = calls.keys.account(ACCOUNT)
    redis_client.delete(key)
    redis_client.hset(key, mapping=fields)  # type: ignore[arg-type]


def test_an_older_hash_account_reads_with_defaults_and_saves_packed(
    redis_client: redis.Redis, call: Callable[..., list[object]], calls: Calls
) -> None:
    code, message, _ = call("create_account", VALID_ARGS["create_account"])
    assert code == Code.SUCCESS, message
    before = stored_account(redis_client, calls)
    assert any(name.startswith("bucket:") for name in before)
    older = [name for name in DEFAULTED if name in before and name != "dealer"]
    # as written before those fields existed, and before accounts were packed
    write_as_older_hash(redis_client, calls, {name: value for name, value in before.items() if name not in older})
    code, message, _ = call("get_account", VALID_ARGS["get_account"])
    assert code == Code.SUCCESS, message
    assert redis_client.type(calls.keys.account(ACCOUNT)) == b"hash"  # a read writes nothing
    code, message, _ = call("top_up", VALID_ARGS["top_up"])
    assert code == Code.SUCCESS, message
    assert redis_client.type(calls.keys.account(ACCOUNT)) == b"string"
    after = stored_account(redis_client, calls)
    for name in older:  # written again: the default, or what the top-up made of it
        assert name in after, name
    assert {name: after[name] for name in ("reminders_sent", "overage_cycle", "plan_changes_applied")} == {
        "reminders_sent": "0",
        "overage_cycle": "0",
        "plan_changes_applied": "",
    }
    assert not OPTIONAL & set(after)  # optional fields: only once used
    assert int(after["ledger_seq"]) == int(before["ledger_seq"]) + 1
    assert int(after["balance"]) == int(before["balance"]) + int(VALID_ARGS["top_up"][2])
    moved = {"balance", "ledger_seq", "ledger_hash", *older}
    unchanged = {name: value for name, value in before.items() if name not in moved}
    assert {name: after[name] for name in unchanged} == unchanged  # the buckets among them
