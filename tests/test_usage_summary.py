"""Usage summaries (core/usage_summary.py, lua/functions/summarize_usage.lua): a pass (the notifier
runs one each round) folds a real server's usage records into per-account totals per local day (the
subscriber's time zone, not UTC: a call at 23:30 and an SMS at 00:30 Bangkok time fall on two days
that are one UTC day) and a list of recent calls and SMS; the money summed equals what the balance
lost; a pass run again from a lost position counts nothing twice. The function alone: records
folded once whatever the repetition, days before the cutoff dropped, the recent list bounded,
records out of order refused (writing nothing). Day totals are kept per destination (the config's
destination set of the called number), and a total written before they were reads as destination ''."""

from __future__ import annotations

import pytest
import redis

from creditd.core.usage_summary import UsageSummarizer, account_usage, local_day, parse_summary
from creditd.store.calls import Calls
from creditd.store.codes import Code, Unit
from creditd.store.keys import partition_of, summarized_of_partition
from tests.harness import DATA, EVENT, INITIAL, SMS, TERMINATE, VOICE, Harness, ServerAt, dump
from tests.test_rating import bangkok_ms

ACCOUNT = "66817770000"
CALLS = Calls(256)


async def use_a_little(creditd: Harness) -> None:
    await creditd.charge("v1", INITIAL, 0, ACCOUNT, [(VOICE, 60, 0)])
    await creditd.charge("v1", TERMINATE, 1, ACCOUNT, [(VOICE, 0, 60)])
    await creditd.charge("d1", INITIAL, 0, ACCOUNT, [(DATA, 5_000_000, 0)])
    await creditd.charge("d1", TERMINATE, 1, ACCOUNT, [(DATA, 0, 3_000_000)])
    await creditd.charge("s1", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])


@pytest.mark.asyncio
async def test_a_sweeper_pass_folds_usage_into_local_days_once(server_at: ServerAt) -> None:
    async with server_at(bangkok_ms("2027-03-10T23:30:00")) as creditd:
        await creditd.create_account(ACCOUNT, balance=50_000)
        await use_a_little(creditd)
        creditd.clock.advance(3600)  # 00:30 on the 11th in Bangkok, still the 10th in UTC
        await creditd.charge("s2", EVENT, 0, ACCOUNT, [(SMS, 0, 0)])
        summarizer = UsageSummarizer(creditd.server.redis, creditd.settings, creditd.clock, "test")
        assert await summarizer.summarize(list(range(256)), 1000) == 4  # the call, the data session, two SMS
        usage = await account_usage(creditd.server.redis, CALLS, ACCOUNT)
        by_day: dict[str, set[int]] = {}
        for total in usage.days:
            by_day.setdefault(total.day, set()).add(total.rating_group)
        assert by_day == {"20270310": {VOICE, DATA, SMS}, "20270311": {SMS}}
        data = [total for total in usage.days if total.rating_group == DATA]
        assert [(d.unit, d.units, d.zone) for d in data] == [(Unit.BYTES, 3_000_000, "home")]
        assert [d.destination for d in usage.days if d.rating_group == VOICE] == ["thailand"]
        balance_lost = 50_000 - (await creditd.get(ACCOUNT)).balance
        assert sum(total.charged_minor for total in usage.days) == balance_lost > 0
        assert [(r.rating_group, r.unit) for r in usage.recent] == [
            (SMS, Unit.EVENTS),
            (SMS, Unit.EVENTS),
            (VOICE, Unit.SECONDS),
        ]
        assert usage.recent[-1].units == 60 and usage.recent[-1].destination == "thailand"
        # the position lost (or two sweepers racing): the same records again count nothing twice
        creditd.redis.delete(summarized_of_partition(partition_of(ACCOUNT, 256)))
        assert await summarizer.summarize(list(range(256)), 1000) == 4
        assert await account_usage(creditd.server.redis, CALLS, ACCOUNT) == usage


def record(record_id: str, day: str, units: int = 60, recent: int = 1) -> list[str]:
    return [
        record_id,
        "1790000000000",
        day,
        str(VOICE),
        str(Unit.SECONDS),
        "home",
        "thailand",
        str(units),
        "100",
        str(recent),
    ]


def summarize(client: redis.Redis, cutoff_day: str, *records: list[str]) -> list[object]:
    keys = list(CALLS.keys_of("summarize_usage", ACCOUNT))
    args = [ACCOUNT, cutoff_day, str(len(records))] + [arg for r in records for arg in r] + ["tester"]
    return client.fcall("summarize_usage", len(keys), *keys, *args)


def test_the_function_folds_each_record_once_and_forgets_old_days(redis_client: redis.Redis) -> None:
    first = record("1000-0", "20270301"), record("1000-1", "20270301"), record("2000-0", "20270302")
    assert summarize(redis_client, "20270201", *first)[2] == b"3"
    assert summarize(redis_client, "20270201", *first)[2] == b"0"  # repeated: nothing
    later = record("2000-0", "20270302"), record("3000-0", "20270405", units=5)
    assert summarize(redis_client, "20270201", *later)[2] == b"1"  # only the new one
    summary_key, recent_key = CALLS.keys_of("summarize_usage", ACCOUNT)
    fields = redis_client.hgetall(summary_key)
    assert fields[f"day:20270301:{VOICE}:{Unit.SECONDS}:home:thailand".encode()] == b"120 200 2"
    assert redis_client.llen(recent_key) == 4
    # a month later the cutoff passes March: those days go, April stays
    assert summarize(redis_client, "20270401", record("4000-0", "20270501", recent=0))[2] == b"1"
    days = sorted(
        field.decode().split(":")[1] for field in redis_client.hgetall(summary_key) if field.startswith(b"day:")
    )
    assert days == ["20270405", "20270501"]
    # a record dated before the cutoff is skipped, yet remembered as seen
    assert summarize(redis_client, "20270401", record("5000-0", "20270301"))[2] == b"0"
    assert redis_client.hget(summary_key, "last_record") == b"5000-0"


def test_day_totals_written_before_destinations_were_kept_still_read() -> None:
    old, new = f"day:20270301:{VOICE}:{Unit.SECONDS}:home", f"day:20270301:{VOICE}:{Unit.SECONDS}:home:thailand"
    usage = parse_summary({old.encode(): b"60 100 1", new.encode(): b"120 200 2", b"last_record": b"1-0"}, [])
    assert [(d.destination, d.units, d.charged_minor, d.records) for d in usage.days] == [
        ("", 60, 100, 1),
        ("thailand", 120, 200, 2),
    ]


def test_the_recent_list_is_bounded(redis_client: redis.Redis) -> None:
    records = [record(f"{1000 + n}-0", "20270301") for n in range(250)]
    for start in range(0, 250, 50):
        assert summarize(redis_client, "20270201", *records[start : start + 50])[0] == Code.SUCCESS
    _, recent_key = CALLS.keys_of("summarize_usage", ACCOUNT)
    kept = redis_client.lrange(recent_key, 0, -1)
    assert len(kept) == 100 and kept[0].startswith(b"1249-0 ") and kept[-1].startswith(b"1150-0 ")


def test_records_out_of_order_are_refused_and_write_nothing(redis_client: redis.Redis) -> None:
    summarize(redis_client, "20270201", record("2000-0", "20270301"))
    before = dump(redis_client)
    code, message, _ = summarize(redis_client, "20270201", record("3000-1", "20270301"), record("3000-0", "20270301"))
    assert code == Code.INVALID_REQUEST and message.startswith(b"records[2].record_id: records must come oldest first")
    assert dump(redis_client) == before


def test_local_day_is_the_subscribers() -> None:
    instant = bangkok_ms("2027-03-11T00:30:00")
    assert (local_day(instant, "Asia/Bangkok"), local_day(instant, "UTC")) == ("20270311", "20270310")
