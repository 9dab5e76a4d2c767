"""Usage summaries: per account, what was used and what it cost per day in the subscriber's time zone,
per rating group, unit, zone and destination (the config's destination set of the called number),
and the recent calls and SMS; read by the self-service usage page and statement and by the
notifier's bundle offers, which look back 30 days while usage records are kept for
`limits.usage_retention_s` (7 days by default) and are read per partition, not per account.

The notifier (`creditd notify`) folds the records in (UsageSummarizer, on the partitions whose lease
it holds, each pass before it handles the events, so that an offer sees the usage that led to it;
it runs there rather than in `creditd serve` so that its work never delays a charge): it reads
the partition's usage stream after its position (`cd:{p:<n>}:summarized`), works out each record's
local day from the account's time zone, and calls summarize_usage per account; the function skips
records the summary already holds, so a pass repeated after a crash counts nothing twice. Records
trimmed before a pass reached them (a sweeper down longer than the retention) are missing from the
summaries, never counted twice.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from creditd.clock import Clock
from creditd.config.settings import Settings
from creditd.core.usage import usage_fields
from creditd.errors import CreditdError, NotFound
from creditd.store.calls import Calls
from creditd.store.codes import Unit
from creditd.store.connection import AnyRedis
from creditd.store.functions import call_all
from creditd.store.keys import summarized_of_partition, usage_of_partition
from creditd.store.replies import ACCOUNT_DECODER, as_text

DAY_FORMAT = "%Y%m%d"
# Records read per partition per pass, at least (the pass's budget is shared out above this).
MIN_PER_PARTITION = 50


class SummaryRecord(msgspec.Struct, frozen=True):
    record_id: str
    time_ms: int
    day: str
    rating_group: int
    unit: int
    zone: str
    destination: str
    units: int
    charged: int
    recent: bool


class DayTotal(msgspec.Struct, frozen=True):
    day: str  # yyyymmdd, the subscriber's local day
    rating_group: int
    unit: int
    zone: str
    units: int
    charged_minor: int
    records: int
    destination: str = ""  # the config's destination set of the called number, '' for none


class RecentUsage(msgspec.Struct, frozen=True):
    record_id: str
    time_ms: int
    rating_group: int
    unit: int
    units: int
    charged_minor: int
    destination: str
    zone: str


class AccountUsage(msgspec.Struct, frozen=True):
    days: list[DayTotal]
    recent: list[RecentUsage]  # newest first


@functools.lru_cache(maxsize=512)
def zone_info(time_zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_day(instant_ms: int, time_zone: str) -> str:
    return datetime.fromtimestamp(instant_ms / 1000, UTC).astimezone(zone_info(time_zone)).strftime(DAY_FORMAT)


def days_back(instant_ms: int, time_zone: str, days: int) -> str:
    """The local day `days` before the one of instant_ms."""
    return local_day(instant_ms - days * 86_400_000, time_zone)


def last_days(instant_ms: int, time_zone: str, days: int) -> list[str]:
    """The `days` local days ending with today, oldest first."""
    today = datetime.fromtimestamp(instant_ms / 1000, UTC).astimezone(zone_info(time_zone)).date()
    return [(today - timedelta(days=back)).strftime(DAY_FORMAT) for back in range(days - 1, -1, -1)]


class UsageSummarizer:
    def __init__(self, client: AnyRedis, settings: Settings, clock: Clock, actor: str) -> None:
        self.client, self.clock, self.actor = client, clock, actor
        self.calls = Calls(settings.redis.partitions)
        self.limits = settings.limits
        self.retention_days = settings.limits.usage_summary_retention_s // 86400

    async def time_zones(self, account_ids: list[str]) -> dict[str, str]:
        now_ms = self.clock.now_ms()
        outcomes = await call_all(self.client, [self.calls.get_account(a, now_ms) for a in account_ids])
        zones: dict[str, str] = {}
        for account_id, outcome in zip(account_ids, outcomes, strict=True):
            if isinstance(outcome, NotFound):
                zones[account_id] = "UTC"  # deleted since: its summary goes unread
            elif isinstance(outcome, CreditdError):
                raise outcome
            else:
                zones[account_id] = ACCOUNT_DECODER.decode(outcome.body).preferences.time_zone or "UTC"
        return zones

    async def summarize(self, partitions: list[int], budget: int) -> int:
        """Folds the records after each partition's position, about `budget` in all (at least
        MIN_PER_PARTITION per partition); returns how many were read. Five round trips whatever the
        number of partitions: positions, streams, time zones, the calls, the new positions."""
        if not partitions:
            return 0
        per_partition = max(MIN_PER_PARTITION, budget // len(partitions))
        pipe = self.client.pipeline(transaction=False)
        for partition in partitions:
            pipe.get(summarized_of_partition(partition))
        positions = [as_text(raw or b"0-0") for raw in await pipe.execute()]
        pipe = self.client.pipeline(transaction=False)
        for partition, after in zip(partitions, positions, strict=True):
            pipe.xrange(usage_of_partition(partition), f"({after}", "+", count=per_partition)
        read = [
            (partition, entries) for partition, entries in zip(partitions, await pipe.execute(), strict=True) if entries
        ]
        if not read:
            return 0
        by_account: dict[str, list[tuple[str, dict[str, str]]]] = defaultdict(list)
        for _, entries in read:
            for raw_id, raw in entries:
                fields = usage_fields({as_text(name): as_text(value) for name, value in (raw or {}).items()})
                by_account[fields["account_id"]].append((as_text(raw_id), fields))
        await self.fold(by_account)
        pipe = self.client.pipeline(transaction=False)
        for partition, entries in read:
            pipe.set(summarized_of_partition(partition), as_text(entries[-1][0]))
        await pipe.execute()
        return sum(len(entries) for _, entries in read)

    async def fold(self, by_account: dict[str, list[tuple[str, dict[str, str]]]]) -> None:
        zones = await self.time_zones(list(by_account))
        now_ms = self.clock.now_ms()
        commands = []
        batch = self.limits.max_usage_summary_batch
        for account_id, records in by_account.items():
            time_zone = zones[account_id]
            summary = [self.summary_record(record_id, fields, time_zone) for record_id, fields in records]
            cutoff_day = days_back(now_ms, time_zone, self.retention_days)
            for start in range(0, len(summary), batch):
                commands.append(
                    self.calls.summarize_usage(account_id, cutoff_day, summary[start : start + batch], self.actor)
                )
        for outcome in await call_all(self.client, commands):
            if isinstance(outcome, CreditdError):
                raise outcome

    @staticmethod
    def summary_record(record_id: str, fields: dict[str, str], time_zone: str) -> SummaryRecord:
        time_ms, unit = int(fields["time_ms"]), int(fields["unit"])
        return SummaryRecord(
            record_id=record_id,
            time_ms=time_ms,
            day=local_day(time_ms, time_zone),
            rating_group=int(fields["rating_group"]),
            unit=unit,
            zone=fields.get("zone", ""),
            destination=fields.get("destination", ""),
            units=int(fields["units"]),
            charged=int(fields["charged"]),
            recent=unit != Unit.BYTES,  # calls and SMS; data sessions make too many records to list
        )


def parse_summary(summary: dict[bytes, bytes], recent: list[bytes]) -> AccountUsage:
    days = []
    for raw_field, raw_value in summary.items():
        field = as_text(raw_field)
        if not field.startswith("day:"):
            continue
        # A field written before destinations were kept in the day totals ends with the zone.
        _, day, rating_group, unit, zone, *destination = field.split(":", 5)
        units, charged, records = (int(part) for part in as_text(raw_value).split(" "))
        days.append(DayTotal(day, int(rating_group), int(unit), zone, units, charged, records, "".join(destination)))
    days.sort(key=lambda total: (total.day, total.rating_group, total.zone, total.destination))
    return AccountUsage(days, [recent_usage(as_text(raw)) for raw in recent])


def recent_usage(line: str) -> RecentUsage:
    record_id, time_ms, rating_group, unit, units, charged, destination, zone = line.split(" ")
    return RecentUsage(
        record_id=record_id,
        time_ms=int(time_ms),
        rating_group=int(rating_group),
        unit=int(unit),
        units=int(units),
        charged_minor=int(charged),
        destination="" if destination == "-" else destination,
        zone="" if zone == "-" else zone,
    )


async def account_usage(client: AnyRedis, calls: Calls, account_id: str) -> AccountUsage:
    """The account's summary as it stands (empty for an account with no usage folded in)."""
    summary_key, recent_key = calls.keys_of("summarize_usage", account_id)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(summary_key)
    pipe.lrange(recent_key, 0, -1)
    summary, recent = await pipe.execute()
    return parse_summary(summary or {}, recent or [])
