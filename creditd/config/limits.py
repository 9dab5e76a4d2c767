"""The limits of one deployment ([limits]): every amount, count, size and time-out that creditd bounds,
each checked at the edge and, where Lua needs it, again inside the functions (the generated CONFIG
table, creditd/store/lua_config.py, holds the ones Lua reads). A module of its own so that the plan
checks can take it without importing the whole settings."""

from __future__ import annotations

from typing import Annotated

import msgspec

from creditd.config.types import PositiveInt, Struct


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
    # ...trimmed back to max_ledger_entries once this many more have been appended: one trim (a read
    # and an LTRIM) per batch instead of one per appended entry of a full ledger. 1: every append.
    ledger_trim_batch: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 100
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
    # Per sign_in_window_s, kept in Redis for every server process (core/sign_in_limits.py): codes
    # asked and failed sign-ins per client address (an IPv6 /64 is one address), and for all
    # addresses together (which also bounds the counters kept).
    sign_in_codes_per_address: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 10
    failed_sign_ins_per_address: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 20
    sign_in_codes_global: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 20_000
    failed_sign_ins_global: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 5_000
    # Vouchers: the largest amount, the longest validity.
    max_voucher_validity_s: Annotated[int, msgspec.Meta(ge=86400, le=10 * 366 * 86400)] = 3 * 366 * 86400
    # Shared wallets: members per group; a member short of money asks its group again after this
    # long when the group gave nothing; a transfer left half done is completed after this long.
    max_group_members: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 64
    group_refill_retry_s: Annotated[int, msgspec.Meta(ge=1, le=86400)] = 60
    group_transfer_completion_s: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 30
    # Abuse limits: whole server, per caller in flight, per caller on Accounts calls.
    max_concurrent_rpcs: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000
    max_in_flight_per_client: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1_024
    accounts_calls_per_client_s: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)] = 1_000.0
    accounts_burst_per_client: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 2_000
