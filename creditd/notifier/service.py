"""`creditd notify`: follows each partition's event stream and tells subscribers, on the channels of
their preferences, in their language, at a decent hour.

Work is shared by partition leases (claim_partition, role 'notifier'): any number of notifiers run,
each on the partitions it holds. Each pass first folds the partitions' new usage records into the
accounts' usage summaries (core/usage_summary.py), which the offers below and the self-service
page read. Per partition it keeps, with plain commands (no money is involved,
docs/design.md lists them): the id of the last event handled (`notified`), a delivery record per
(event, channel) (`notice`: state sent, deferred, retrying, held, dead or suppressed, attempts, reason,
and the event itself), the deliveries due later (`notices_due`: quiet hours, retries), the notices
an account's later ones wait behind (`deliveries_waiting`, order.py: event order across retries) and
the dead letters. An event is handled once its every channel has a record, then `notified` moves past it: a
notifier killed in between handles it again and finds the records, so the only notices sent twice
are those in flight at the kill (sent, their record not yet written).

Per event: only subscriber-facing kinds (templates.SUBSCRIBER_KINDS); marketing kinds only with the
subscriber's opt-in (service notices always); at most one notice per kind and account within
min_interval_s; in the subscriber's quiet hours (their time zone) a notice waits for the end of them,
unless the plan lists its kind as urgent. After a data bundle ran out or the overage cap was reached,
an opted-in subscriber also gets an offer: the bundle that would have covered their last 30 days of
data for the least (core/offers.py, from the usage summaries the sweeper keeps). A refusal (a bad
number or address) dead-letters at once; an outage retries with backoff up to max_attempts, then
dead-letters. A notice a later event made meaningless is dropped with its reason (superseded).
The rules of whether and when live in rules.py, what a notice says in wording.py, the channels in
dispatch.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable
from pathlib import Path

import msgspec
from redis.exceptions import RedisError

from creditd import metrics
from creditd.clock import Clock, wait_or_stop
from creditd.config.settings import Settings
from creditd.core.notices import DEFERRED, notice_fields, queue_notice, retention_of
from creditd.core.notices import NoticeEvent as Event
from creditd.core.offers import recommend
from creditd.core.sign_in_codes import SignInKey, load_sign_in_key
from creditd.core.usage_summary import UsageSummarizer, account_usage
from creditd.display_names import NO_NAMES, Names
from creditd.errors import CreditdError
from creditd.formatting import bundle_of
from creditd.notifier import order
from creditd.notifier.channels import ChannelError
from creditd.notifier.dispatch import CONSOLE, Channels
from creditd.notifier.rules import (
    ASKED_FOR_KINDS,
    CONFIRMATION_KINDS,
    OFFER_TRIGGERS,
    code_superseded,
    in_quiet_hours,
    superseded,
)
from creditd.notifier.templates import (
    SUBSCRIBER_KINDS,
    NoticeContext,
    Templates,
    is_marketing,
    kind_label,
)
from creditd.notifier.wording import notice_context
from creditd.store.calls import Calls, fcall, fcall_words
from creditd.store.connection import AnyRedis
from creditd.store.keys import events_of_partition, notifier_key
from creditd.store.replies import ACCOUNT_DECODER, AccountRecord, as_text, checked_reply

log = logging.getLogger(__name__)
ROLE = "notifier"
SENT, RETRYING, DEAD, SUPPRESSED = "sent", "retrying", "dead", "suppressed"
# Partitions worked at once in a pass (each holds one of max_in_flight slots only while it delivers).
PARTITIONS_AT_ONCE = 16
# Why a notice is held (order.py): a notice of an earlier event of the account waits on its channel.
AFTER_EARLIER = "after an earlier notice"
# While Redis stays away, the pass failure is logged again only this often.
FAILURE_LOG_INTERVAL_S = 60.0


class Notifier:
    def __init__(self, client: AnyRedis, settings: Settings, clock: Clock, owner: str, names: Names = NO_NAMES) -> None:
        self.client, self.settings, self.clock, self.owner = client, settings, clock, owner
        self.names = names  # what subscribers call bundles, in each language (creditd/display_names.py)
        self.config = settings.notifications
        self.calls = Calls(settings.redis.partitions)
        self.templates = Templates(Path(settings.notifications.templates_dir))
        self.channels = Channels(self.config)
        self._in_flight = asyncio.Semaphore(self.config.max_in_flight)
        self.summarizer = UsageSummarizer(client, settings, clock, f"notifier:{owner}")

    # -- leases and the loop

    async def held_partitions(self) -> list[int]:
        lease_ms = int(self.config.lease_s * 1000)
        pipe = self.client.pipeline(transaction=False)
        for partition in range(self.settings.redis.partitions):
            pipe.execute_command(*fcall_words(self.calls.claim_partition(partition, self.owner, lease_ms, ROLE)))
        replies = await pipe.execute()
        held = [partition for partition, raw in enumerate(replies) if checked_reply(raw).body == b"1"]  # type: ignore[union-attr]
        metrics.NOTIFIER_PARTITIONS.set(len(held))
        return held

    def channels_in_use(self) -> list[str]:
        """The configured channels; none configured: 'console' (notices written to this log)."""
        return list(self.channels.names)

    async def run(self, stopping: asyncio.Event) -> None:
        channels = self.channels_in_use()
        log.info(
            "notifier %s started: channels %s, %d partitions to share%s",
            self.owner,
            ", ".join(channels),
            self.settings.redis.partitions,
            " (no channel configured: each notice is written to this log)" if channels == [CONSOLE] else "",
        )
        failing_since, logged_at = 0.0, 0.0
        try:
            while not stopping.is_set():
                try:
                    busy = await self.pass_once()
                    if failing_since:
                        log.info("notifier: redis answers again after %.0f s", time.monotonic() - failing_since)
                        failing_since = 0.0
                except (RedisError, OSError, CreditdError) as error:
                    now = time.monotonic()
                    if not failing_since or now - logged_at >= FAILURE_LOG_INTERVAL_S:
                        log.warning("notifier: %s; trying again every %g s", error, self.config.poll_interval_s)
                        logged_at = now
                    failing_since = failing_since or now
                    busy = False
                if not busy:
                    await wait_or_stop(stopping, self.config.poll_interval_s)
        finally:
            await self.close()

    async def close(self) -> None:
        await self.channels.close()

    async def pass_once(self) -> bool:
        """One round over the held partitions, PARTITIONS_AT_ONCE at a time; True when it found work."""
        partitions = await self.held_partitions()
        summarized = await self.summarizer.summarize(partitions, self.config.max_usage_per_pass)
        gate = asyncio.Semaphore(PARTITIONS_AT_ONCE)

        async def work(partition: int) -> bool:
            async with gate:
                return await self.handle_partition(partition) | await self.deliver_due(partition)

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(work(partition)) for partition in partitions]
        return bool(summarized) or any(task.result() for task in tasks)

    async def in_flight(self, work: Awaitable[None]) -> None:
        """Runs work when fewer than max_in_flight others run: the bound on notices handed off at once."""
        async with self._in_flight:
            await work

    # -- events

    async def handle_partition(self, partition: int) -> bool:
        position_key = notifier_key("notifier_position", partition)
        after = as_text(await self.client.get(position_key) or b"0-0")
        stream = events_of_partition(partition)
        entries = await self.client.xrange(stream, f"({after}", "+", count=self.config.batch_size) or []
        by_account: dict[str, list[Event]] = {}
        for raw_id, raw in entries:
            fields = {as_text(name): as_text(value) for name, value in (raw or {}).items()}
            if fields.get("kind") in SUBSCRIBER_KINDS and "gateway_id" not in fields:
                time_ms, detail = int(fields["time_ms"]), fields.get("detail", "")
                balance, available = fields.get("balance"), fields.get("available")
                event = Event(
                    as_text(raw_id or b""),
                    fields["kind"],
                    fields["account_id"],
                    time_ms,
                    detail,
                    int(balance) if balance is not None else None,
                    int(available) if available is not None else None,
                )
                by_account.setdefault(event.account_id, []).append(event)

        async def handle_account(events: list[Event]) -> None:
            for event in events:  # one account's notices in their order
                await self.handle_event(partition, event)

        # Accounts at once; a failure leaves the position where it was, and the batch is handled again
        # (the delivery records keep what was done from being done twice).
        async with asyncio.TaskGroup() as group:
            for events in by_account.values():
                group.create_task(self.in_flight(handle_account(events)))
        if entries:
            await self.client.set(position_key, as_text(entries[-1][0] or b""))
        return bool(entries)

    async def card(self, account_id: str) -> AccountRecord | None:
        raw = await self.client.execute_command(
            "FCALL_RO", *fcall(self.calls.get_account(account_id, self.clock.now_ms()))
        )
        outcome = checked_reply(raw)
        return None if isinstance(outcome, CreditdError) else ACCOUNT_DECODER.decode(outcome.body)

    async def handle_event(self, partition: int, event: Event) -> None:
        card = await self.card(event.account_id)
        if card is None:
            return
        await self.tell(partition, event, card)
        offer = await self.offer_for(event, card)
        if offer is not None:
            await self.tell(partition, offer, card)

    async def offer_for(self, event: Event, card: AccountRecord) -> Event | None:
        """After a data bundle ran out or the overage cap was reached, an opted-in subscriber hears of
        the bundle that would have covered their last 30 days for the least (core/offers.py)."""
        plan = self.settings.plans.get(card.plan)
        if event.kind not in OFFER_TRIGGERS or plan is None or not card.preferences.marketing_opt_in:
            return None
        if event.kind == "bundle_used_up":
            bundle_id = bundle_of(event.detail.split(" ")[0])
            if not any(b.bundle_id == bundle_id and b.unit == "BYTES" for b in plan.bundles):
                return None
        usage = await account_usage(self.client, self.calls, card.account_id)
        offer = recommend(plan, usage.days, self.clock.now_ms(), card.preferences.time_zone)
        if offer is None:
            return None
        detail = f"{offer.bundle_id} {offer.price_minor}"
        return Event(f"{event.id}.offer", "offer", event.account_id, event.time_ms, detail)

    async def tell(self, partition: int, event: Event, card: AccountRecord) -> None:
        prefs = card.preferences
        channels = [channel for channel in prefs.channels.split(",") if channel]
        records = [notifier_key("delivery", partition, idempotency_key=f"{event.id}/{channel}") for channel in channels]
        existing = [await self.client.exists(key) for key in records]
        pending = [channel for channel, seen in zip(channels, existing, strict=True) if not seen]
        if not pending:
            return
        reason = await self.outdated(event, card) or await self.suppression(partition, event, card)
        if reason:
            for channel in pending:
                await self.record(partition, event, channel, SUPPRESSED, reason)
                metrics.NOTICES.labels(channel, kind_label(event.kind), SUPPRESSED).inc()
            return
        now_ms = self.clock.now_ms()
        quiet_end = self.quiet_until(event, card, now_ms)
        for channel in pending:
            if (ahead_ms := await order.due_ahead(self.client, partition, event, channel)) is not None:
                # Due with it: this pass's deliveries, which follow, take the two in event order.
                await self.schedule(partition, event, channel, order.HELD, ahead_ms + 1, AFTER_EARLIER)
            elif quiet_end:
                await self.schedule(partition, event, channel, DEFERRED, quiet_end, "quiet hours")
                metrics.NOTICES.labels(channel, kind_label(event.kind), DEFERRED).inc()
            else:
                await self.deliver(partition, event, channel, card, attempts=0)

    def quiet_until(self, event: Event, card: AccountRecord, now_ms: int) -> int:
        """When the subscriber's quiet hours end, if now is in them and the notice must wait for
        that (0 otherwise): not an urgent kind of their plan, nor a code they have just asked for."""
        plan = self.settings.plans.get(card.plan)
        if event.kind in ASKED_FOR_KINDS or (plan is not None and event.kind in plan.urgent_notice_kinds):
            return 0
        prefs = card.preferences
        return in_quiet_hours(now_ms, prefs.time_zone, prefs.quiet_hours_start, prefs.quiet_hours_end)

    async def suppression(self, partition: int, event: Event, card: AccountRecord) -> str:
        if is_marketing(event.kind) and not card.preferences.marketing_opt_in:
            return "no marketing opt-in"
        if self.config.min_interval_s and event.kind not in CONFIRMATION_KINDS:
            key = notifier_key("last_notice", partition, event.account_id, event.kind)
            claimed = await self.client.set(key, event.id, nx=True, px=self.config.min_interval_s * 1000)
            # Claimed before by this very event: it is being handled again after a restart.
            if not claimed and as_text(await self.client.get(key) or b"") != event.id:
                return f"another {event.kind} notice within {self.config.min_interval_s} s"
        return ""

    # -- deliveries

    def context(self, event: Event, card: AccountRecord) -> NoticeContext:
        return notice_context(event, card, self.settings.plans.get(card.plan), self.names, self.sign_in_code)

    @functools.cached_property
    def sign_in_key(self) -> SignInKey:
        return load_sign_in_key(self.settings.security.sign_in_key_path, self.settings.redis.data_dir)

    async def outdated(self, event: Event, card: AccountRecord) -> str:
        """superseded(); for a sign-in code, whether it is still the code creditd would accept."""
        if event.kind != "sign_in_code":
            return superseded(event, card)
        code = self.sign_in_key.open(event.id, event.detail)
        if code is None:
            return ""  # sealed under another key: dead-lettered when it is rendered
        _, sign_in_key = self.calls.keys_of("issue_sign_in_code", card.account_id)
        stored, expires_ms = await self.client.hmget(sign_in_key, ["code_hash", "expires_ms"])
        digest = self.sign_in_key.digest(card.account_id, code)
        return code_superseded(digest, as_text(stored or b""), int(expires_ms or 0), self.clock.now_ms())

    def sign_in_code(self, event: Event) -> str:
        """The code sealed in a sign-in notice (core/sign_in_codes.py); a notice sealed under another
        key (security.sign_in_key_path differs between the server and this notifier) is dead-lettered."""
        code = self.sign_in_key.open(event.id, event.detail)
        if code is None:
            raise ChannelError("sign_in_code: sealed under another key (security.sign_in_key_path)", retryable=False)
        return code

    async def deliver(self, partition: int, event: Event, channel: str, card: AccountRecord, attempts: int) -> None:
        attempts += 1
        try:
            notice = self.templates.render(card.preferences.language, event.kind, self.context(event, card))
            # Unique across partitions (stream ids are only unique within one): the event id and the channel.
            await self.channels.send(f"{event.id}-{partition}-{channel}", channel, event, card, notice)
        except ChannelError as error:
            log.warning(
                "notice %s to %s on %s failed (attempt %d of %d): %s",
                event.kind,
                event.account_id,
                channel,
                attempts,
                self.config.max_attempts,
                error.message,
            )
            if error.retryable and attempts < self.config.max_attempts:
                due_ms = self.clock.now_ms() + int(self.config.retry_base_s * 2 ** (attempts - 1) * 1000)
                await self.schedule(partition, event, channel, RETRYING, due_ms, error.message, attempts)
                metrics.NOTICES.labels(channel, kind_label(event.kind), "failed").inc()
            else:
                metrics.NOTICES.labels(channel, kind_label(event.kind), DEAD).inc()
                await self.record(partition, event, channel, DEAD, error.message, attempts)
                key = notifier_key("dead_letters", partition)
                await self.client.lpush(key, f"{event.id}/{channel} {error.message}")
                await self.client.ltrim(key, 0, self.config.max_dead_letters - 1)
            return
        await self.record(partition, event, channel, SENT, "", attempts)
        log.info("notice %s to %s sent on %s", event.kind, event.account_id, channel)
        metrics.NOTICES.labels(channel, kind_label(event.kind), SENT).inc()
        metrics.NOTICE_LAG.labels(channel).observe(max(0.0, (self.clock.now_ms() - event.time_ms) / 1000))

    async def record(
        self, partition: int, event: Event, channel: str, state: str, reason: str, attempts: int = 0, due_ms: int = 0
    ) -> None:
        key = notifier_key("delivery", partition, idempotency_key=f"{event.id}/{channel}")
        await self.client.hset(key, mapping=notice_fields(event, state, reason, attempts, due_ms))  # type: ignore[arg-type]
        await self.client.expire(key, retention_of(event.kind, self.settings))
        if state in (SENT, DEAD, SUPPRESSED):
            await order.leave(self.client, partition, event, channel)

    async def schedule(
        self, partition: int, event: Event, channel: str, state: str, due_ms: int, reason: str, attempts: int = 0
    ) -> None:
        """Queues a delivery for due_ms (deferred, a retry, or held behind an earlier notice): its
        record and its due entry; a retried or held one also waits among the account's (order.py)."""
        key = notifier_key("delivery", partition, idempotency_key=f"{event.id}/{channel}")
        pipe = self.client.pipeline(transaction=False)
        retention_s = retention_of(event.kind, self.settings)
        if state in (RETRYING, order.HELD):
            order.join(pipe, partition, event, channel, retention_s)
        queue_notice(
            pipe,
            key,
            notifier_key("deliveries_due", partition),
            event,
            channel,
            due_ms,
            reason,
            retention_s,
            state,
            attempts,
        )
        await pipe.execute()

    async def deliver_due(self, partition: int) -> bool:
        due_key = notifier_key("deliveries_due", partition)
        now_ms = self.clock.now_ms()
        members = await self.client.zrangebyscore(due_key, "-inf", now_ms, start=0, num=self.config.batch_size)

        async def one_account(names: list[str]) -> None:
            for name in names:  # in the order of their events
                await self.in_flight(self.deliver_member(partition, name, now_ms))

        async with asyncio.TaskGroup() as group:
            for names in (await self.due_by_account(partition, [as_text(member) for member in members])).values():
                group.create_task(one_account(names))
        return bool(members)

    async def due_by_account(self, partition: int, names: list[str]) -> dict[str, list[str]]:
        """The due deliveries ('<event id>/<channel>') by account, each account's in event order (a
        notice not from the feed, or without a record, on its own)."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hget(notifier_key("delivery", partition, idempotency_key=name), "event")
        by_account: dict[str, list[str]] = {}
        for name, raw in zip(names, await pipe.execute(), strict=True):
            event = msgspec.json.decode(raw, type=Event) if raw else None
            ordered = event is not None and order.event_order(event.id) is not None
            by_account.setdefault(event.account_id if event and ordered else name, []).append(name)
        for account_names in by_account.values():
            account_names.sort(key=lambda name: order.event_order(name.rsplit("/", 1)[0]) or (0, 0))
        return by_account

    async def deliver_member(self, partition: int, name: str, now_ms: int) -> None:
        """One deferred or retried delivery ('<event id>/<channel>' of the due set)."""
        due_key = notifier_key("deliveries_due", partition)
        record = await self.client.hgetall(notifier_key("delivery", partition, idempotency_key=name))
        event = msgspec.json.decode(record[b"event"], type=Event) if record else None
        card = await self.card(event.account_id) if event else None
        channel = name.rsplit("/", 1)[1]
        if event and card and is_marketing(event.kind) and not card.preferences.marketing_opt_in:
            await self.record(partition, event, channel, SUPPRESSED, "no marketing opt-in")  # since queued
            metrics.NOTICES.labels(channel, kind_label(event.kind), SUPPRESSED).inc()
        elif event and card and (outdated := await self.outdated(event, card)):
            await self.record(partition, event, channel, SUPPRESSED, outdated)  # since queued
            metrics.NOTICES.labels(channel, kind_label(event.kind), SUPPRESSED).inc()
            log.info("notice %s to %s on %s dropped: %s", event.kind, event.account_id, channel, outdated)
        elif event and card and (ahead_ms := await order.due_ahead(self.client, partition, event, channel)) is not None:
            due_ms = max(ahead_ms, now_ms) + 1  # after now: the end of this pass must not take it off the due set
            await self.schedule(partition, event, channel, order.HELD, due_ms, AFTER_EARLIER, int(record[b"attempts"]))
        elif event and card and (quiet_end := self.quiet_until(event, card, now_ms)):
            # Checked again at delivery: a notice queued outside them (a campaign, a retry) may fall
            # due inside the subscriber's quiet hours, or their hours may have changed since.
            await self.schedule(partition, event, channel, DEFERRED, quiet_end, "quiet hours", int(record[b"attempts"]))
        elif event and card:
            await self.deliver(partition, event, channel, card, int(record[b"attempts"]))
        # Only now: a kill before this sends it again (in flight); a retry rescheduled it later.
        score = await self.client.zscore(due_key, name)
        if score is not None and score <= now_ms:
            await self.client.zrem(due_key, name)
