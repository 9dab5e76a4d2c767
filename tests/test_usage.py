"""Usage records and adjustments on a real server. A scenario of data, voice (one call split by the
22:00 tariff change), SMS from a bundle and from money, abroad and home, and a sweeper-charged orphan
writes exactly the records its ledger implies: per record, charged = the tariff's price of the units
not taken from bundles; per ledger entry, the sum of its records; replays and refusals write none.
WatchUsage delivers them in order and resumes from any id. Adjust credits and debits once per key,
suspends on a debit into debt and resumes on a credit out of it; the dealer is on the card and on
every record; the auditor flags a record no ledger entry charged; records older than the retention
(by the stream's ids) are trimmed within a few dozen appends, newer ones kept, and a stream grown past
limits.max_usage_per_partition is brought back to it within as many, again and again. Clocks are frozen where
prices depend on the hour."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict

import grpc
import msgspec
import pytest

from creditd.config.settings import Settings
from creditd.core.usage import OLDEST, RECORD_FIELD, RECORD_VALUES, Usage, read_usage, usage_feed
from creditd.resources import lua_directory
from creditd.store.connection import AnySyncRedis
from creditd.store.embedded import EmbeddedRedis
from creditd.v1 import creditd_pb2 as pb
from tests.harness import (
    DATA,
    EVENT,
    MB,
    SMS,
    TERMINATE,
    UPDATE,
    VOICE,
    Harness,
    ServerAt,
    dump,
    started_server,
)
from tests.test_rating import ABROAD, bangkok_ms, play

pytestmark = pytest.mark.asyncio
ACCOUNT = "66817170000"  # the account tests.test_rating's play() charges
# Appends between two trims by age, as lib/usage.lua says.
APPENDS_BETWEEN_AGE_TRIMS = int(
    re.search(r"appends_between = (\d+)", (lua_directory() / "lib" / "usage.lua").read_text()).group(1)  # type: ignore[union-attr]
)
# Redis' stream-node-max-entries: an approximate trim drops whole nodes of this many entries.
STREAM_NODE_ENTRIES = 100


async def all_usage(creditd: Harness) -> list[Usage]:
    settings = creditd.settings
    feed = usage_feed(creditd.server.redis, settings.redis.partitions, settings.events, 2.0)
    await asyncio.sleep(settings.events.settle_ms / 1000 * 3)  # past the feed's settle horizon
    return [record async for record in read_usage(feed, OLDEST)]


def tariff_price(settings: Settings, plan: str, name: str, units: int) -> int:
    tariff = next(t for t in settings.plans[plan].tariffs if t.name == name)
    return -(-units // tariff.block_size) * tariff.price_minor


async def play_scenario(creditd: Harness) -> None:
    await creditd.accounts.CreateAccount(
        pb.CreateAccountRequest(account_id=ACCOUNT, plan="standard", initial_balance=50_000, dealer="shop-42")
    )
    await creditd.accounts.PurchaseBundle(
        pb.PurchaseBundleRequest(account_id=ACCOUNT, bundle_id="sms_50", idempotency_key="b1")
    )
    await play(creditd, "d1", [(DATA, 2 * MB, 0)], called_party="")
    await play(creditd, "d1", [(DATA, 2 * MB, 1_500_000)], UPDATE, 1, "", ABROAD)
    await play(creditd, "d1", [(DATA, 0, 700_000)], TERMINATE, 2, "", ABROAD)
    await play(creditd, "v1", [(VOICE, 600, 0)])  # 21:55: the grant carries the 22:00 change
    creditd.clock.advance(600)
    await play(creditd, "v1", [(VOICE, 0, 590)], TERMINATE, 1, used_after=290)
    await play(creditd, "e1", [(SMS, 0, 0)], EVENT)  # from the bundle
    await play(creditd, "e2", [(SMS, 0, 0)], EVENT, called_party="442079460000")  # from the bundle too
    await play(creditd, "e3", [(SMS, 0, 0)], EVENT, visited_plmn=ABROAD)  # abroad: money
    await play(creditd, "o1", [(VOICE, 120, 0)])  # never reported: the sweeper charges it
    creditd.clock.advance(3600)
    await creditd.server.sweeper.sweep_once()


async def test_every_charge_writes_the_records_its_ledger_implies(server_at: ServerAt, settings: Settings) -> None:
    charge_policy = msgspec.structs.replace(settings.sweeper, orphan_policy="charge", grace_period_s=0)
    async with server_at(bangkok_ms("2027-03-10T21:55:00"), sweeper=charge_policy) as creditd:
        await play_scenario(creditd)
        before = await all_usage(creditd)
        # a retransmission and a refused request write no record
        retransmitted = await play(creditd, "v1", [(VOICE, 0, 590)], TERMINATE, 1, used_after=290)
        assert retransmitted.grants[0].charged == 5 * 100 + 5 * 50
        snapshot = dump(creditd.redis)
        refused = await play(creditd, "x1", [(SMS, 0, 0)], EVENT, called_party="0123")
        assert refused.result == pb.RATING_FAILED and dump(creditd.redis) == snapshot
        records = await all_usage(creditd)
        assert records == before

        ledger = await creditd.ledger(ACCOUNT, 1000)
        charges = {entry.reference: -entry.amount for entry in ledger if entry.kind == "charge"}
        by_reference: dict[str, int] = defaultdict(int)
        for record in records:
            assert record.units - record.from_buckets >= 0 and record.dealer == "shop-42"
            expected = tariff_price(creditd.settings, "standard", record.tariff, record.units - record.from_buckets)
            assert record.charged == expected, record
            by_reference[record.reference] += record.charged
        assert {ref: charged for ref, charged in by_reference.items() if charged} == charges

        summary = sorted(
            (r.reference, r.tariff, r.zone, r.destination, r.units, r.from_buckets, r.charged) for r in records
        )
        assert summary == sorted(
            [
                ("gw1 d1 1", "data", "home", "", 1_500_000, 0, 20),
                ("gw1 d1 2", "data_roaming", "roaming", "", 700_000, 0, 500),
                ("gw1 v1 1", "voice_out", "home", "thailand", 300, 0, 500),
                ("gw1 v1 1", "voice_out_night", "home", "thailand", 290, 0, 250),
                ("gw1 e1 0", "sms", "home", "thailand", 1, 1, 0),
                ("gw1 e2 0", "sms_international", "home", "international", 1, 1, 0),
                ("gw1 e3 0", "sms_roaming", "roaming", "thailand", 1, 0, 300),
                ("orphan gw1 o1", "voice_out_night", "home", "thailand", 120, 0, 100),
            ]
        )


async def test_watch_usage_is_ordered_and_resumable(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-03-10T12:00:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=10_000)
        for n in range(6):
            await play(creditd, f"s{n}", [(SMS, 0, 0)], EVENT)

        async def take(from_id: str, count: int) -> list[pb.UsageRecord]:
            stream = creditd.accounts.WatchUsage(pb.WatchUsageRequest(from_id=from_id))
            taken = []
            async for record in stream:
                taken.append(record)
                if len(taken) == count:
                    break
            stream.cancel()
            return taken

        first = await asyncio.wait_for(take("0-0-0", 2), 10)
        rest = await asyncio.wait_for(take(first[-1].id, 4), 10)
        assert [r.session_id for r in first + rest] == [f"s{n}" for n in range(6)]
        assert all(r.charged == 50 and r.unit == pb.EVENTS and r.tariff == "sms" for r in first + rest)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await take("yesterday", 1)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "from_id" in (error.value.details() or "")


async def adjust(creditd: Harness, amount: int, key: str, reason: str = "billing correction") -> pb.AdjustAnswer:
    request = pb.AdjustRequest(account_id=ACCOUNT, amount=amount, reason=reason, idempotency_key=key)
    return await creditd.accounts.Adjust(request)


async def test_adjust_debits_into_suspension_and_credits_out_once_per_key(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1_000)
    debit = await adjust(creditd, -1_500, "a1", "double top-up reversed")
    assert (debit.replayed, debit.balance) == (False, -500)
    assert (await creditd.get(ACCOUNT)).status == pb.ONE_WAY_SUSPENDED
    again = await adjust(creditd, -1_500, "a1", "double top-up reversed")
    assert (again.replayed, again.ledger_seq, again.balance) == (True, debit.ledger_seq, -500)
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await adjust(creditd, -1_000, "a1", "double top-up reversed")
    assert "idempotency_key: already used" in (conflict.value.details() or "")
    credit = await adjust(creditd, 2_000, "a2", "goodwill")
    card = await creditd.get(ACCOUNT)
    assert (credit.balance, card.status, card.status_reason) == (1_500, pb.ACTIVE, "ADJUSTMENT")
    entries = [e for e in await creditd.ledger(ACCOUNT) if e.kind == "adjustment"]
    assert [(e.amount, e.reference) for e in entries] == [(2_000, "a2 goodwill"), (-1_500, "a1 double top-up reversed")]
    for amount, reason, field in ((0, "x", "amount"), (5, "", "reason"), (5, "a\nb", "reason")):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await adjust(creditd, amount, "a3", reason)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (error.value.details() or "").startswith(field), error.value.details()


@pytest.mark.corrupts_data
async def test_the_auditor_flags_a_record_no_charge_made(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1_000, dealer="online")
    assert (await creditd.get(ACCOUNT)).dealer == "online"
    await creditd.charge("s1", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])
    creditd.assert_audit_clean()
    creditd.redis.xadd(
        creditd.server_keys().usage(ACCOUNT),
        {"account_id": ACCOUNT, "reference": "gw9 forged 0", "charged": "70"},
    )
    violations = creditd.audit().violations
    assert violations == [
        f"account {ACCOUNT}: usage records charge 70 for 'gw9 forged 0', which no ledger entry charged"
    ]


async def test_records_written_before_the_packed_field_read_as_packed_ones(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1_000, dealer="online")
    await creditd.charge("s1", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])
    key = creditd.server_keys().usage(ACCOUNT)
    [(_, raw)] = creditd.redis.xrange(key)
    assert list(raw) == [RECORD_FIELD.encode()]  # one field: the values, tab-joined
    values = dict(zip(RECORD_VALUES, raw[RECORD_FIELD.encode()].decode().split("\t"), strict=True))
    # as records were written before: a field per value, and none for bonus (before bonus money)
    older = {name: value for name, value in values.items() if name != "bonus"} | {"session_id": "s0"}
    older_id = creditd.redis.xadd(key, older)
    packed, unpacked = await all_usage(creditd)
    assert msgspec.structs.replace(unpacked, id=packed.id, session_id="s1") == packed
    assert packed.charged > 0 and packed.dealer == "online" and unpacked.bonus == 0
    creditd.redis.xdel(key, older_id)  # it charged nothing: the teardown's audit would flag it


def few_usage_records(settings: Settings) -> Settings:
    limits = msgspec.structs.replace(settings.limits, max_usage_per_partition=1000)  # the least allowed
    return msgspec.structs.replace(settings, limits=limits)


async def test_a_stream_past_its_bound_is_trimmed_back_within_a_few_dozen_appends(
    redis_server: EmbeddedRedis, redis_client: AnySyncRedis, settings: Settings
) -> None:
    """Twice: the stream filled past the bound, then APPENDS_BETWEEN_AGE_TRIMS + 1 charges, at least
    one of which trims it (wherever the count of appends stood); what is left is the bound, at most a
    stream node more and the appends since that trim, with every charge's record kept."""
    own = few_usage_records(settings)
    bound = own.limits.max_usage_per_partition
    async with started_server(own, redis_server.url, redis_client) as creditd:
        await creditd.create_account(ACCOUNT, balance=1_000_000)
        key = creditd.server_keys().usage(ACCOUNT)
        charges = 0
        for _ in range(2):
            with creditd.redis.pipeline(transaction=False) as pipe:
                for _ in range(bound + 3 * STREAM_NODE_ENTRIES - creditd.redis.xlen(key)):
                    pipe.xadd(key, {RECORD_FIELD: "filler"})
                pipe.execute()
            for _ in range(APPENDS_BETWEEN_AGE_TRIMS + 1):
                answer = await creditd.charge(f"e{charges}", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])
                assert answer.result == pb.SUCCESS
                charges += 1
            length = creditd.redis.xlen(key)
            assert bound <= length <= bound + STREAM_NODE_ENTRIES + APPENDS_BETWEEN_AGE_TRIMS, length
        entries = creditd.redis.xrange(key)
        fillers = [entry_id for entry_id, fields in entries if fields[RECORD_FIELD.encode()] == b"filler"]
        assert len(entries) - len(fillers) == charges, "a charge's record was trimmed"
        creditd.redis.xdel(key, *fillers)  # they charged nothing: the audit would flag them
        creditd.assert_audit_clean()


async def test_records_older_than_the_retention_are_trimmed_newer_ones_kept(creditd: Harness) -> None:
    await creditd.create_account(ACCOUNT, balance=1_000_000)
    key = creditd.server_keys().usage(ACCOUNT)
    seconds, microseconds = creditd.redis.time()
    retention_ms = creditd.settings.limits.usage_retention_s * 1000
    expired_ms = seconds * 1000 + microseconds // 1000 - retention_ms - 60_000  # a minute past the retention
    expired = [f"{expired_ms}-{n}" for n in range(3 * STREAM_NODE_ENTRIES)]
    for entry_id in expired:
        creditd.redis.xadd(key, {RECORD_FIELD: "expired"}, id=entry_id)
    # at least one trim by age, wherever the stream's count of appends stood
    for number in range(APPENDS_BETWEEN_AGE_TRIMS + 1):
        answer = await creditd.charge(f"e{number}", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])
        assert answer.result == pb.SUCCESS
    left = [entry_id.decode() for entry_id, _ in creditd.redis.xrange(key)]
    expired_ids = set(expired)
    expired_left = [entry_id for entry_id in left if entry_id in expired_ids]
    assert len(expired_left) < STREAM_NODE_ENTRIES, "records past the retention were kept"
    assert len(left) - len(expired_left) == APPENDS_BETWEEN_AGE_TRIMS + 1, "a record within the retention was dropped"
    if expired_left:  # they charged nothing: the teardown's audit would flag them
        creditd.redis.xdel(key, *expired_left)
