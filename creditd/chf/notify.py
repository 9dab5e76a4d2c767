"""ChargingNotifyRequest (TS 32.291) to the SMF: REAUTHORIZATION when creditd asks a session's gateway
to re-authorise (REAUTH: a bundle bought, a top-up), ABORT_CHARGING when it aborts the session
(ABORT_SESSION: an operator's two-way suspension, the ladder).

- The notifyUri of a create is kept (plain SET with a TTL, chf.notify.uri_retention_s) under the
  session's ChargingDataRef, in the account's partition.
- One chf process at a time follows the event feed (the lease `chf` on partition 0, renewed every
  third of chf.notify.lease_s; another process takes over when it runs out), from the position stored
  for the gateway (store/keys.gateway_position), else from where the process started, and hands each
  notice of chf.gateway_id's sessions to a bounded queue. The position moves once a notice is
  queued, so a process killed with notices still queued loses those (at most max_pending).
- chf.notify.senders tasks POST them (HTTP/1.1, a time-out each) and retry an outage or a 5xx with
  doubling backoff, up to chf.notify.attempts. Charging never waits for them: a consumer that is down
  fills the queue, whose overflow is dropped and counted, not the requests' latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
import msgspec
from redis.exceptions import RedisError

from creditd import metrics
from creditd.clock import wait_or_stop
from creditd.config.settings import Settings
from creditd.core.feed import EventFeed, FeedEvent, Key, parse_position
from creditd.errors import CreditdError
from creditd.store.calls import Calls
from creditd.store.connection import AnyRedis
from creditd.store.functions import Functions
from creditd.store.keys import Keys, gateway_position

log = logging.getLogger(__name__)
NOTIFICATION_TYPES = {"REAUTH": "REAUTHORIZATION", "ABORT_SESSION": "ABORT_CHARGING"}
ROLE = "chf"
LEASE_PARTITION = 0


class Notice(msgspec.Struct, frozen=True):
    account_id: str
    ref: str
    notification_type: str


class Notifications:
    def __init__(self, client: AnyRedis, functions: Functions, settings: Settings, owner: str) -> None:
        self._client = client
        self._functions = functions
        self._settings = settings
        self._config = settings.chf.notify
        self._owner = owner
        self._keys = Keys(settings.redis.partitions)
        self._calls = Calls(settings.redis.partitions)
        self._timeout_s = settings.redis.call_timeout_s
        self._queue: asyncio.Queue[Notice] = asyncio.Queue(self._config.max_pending)
        self._feed = EventFeed(client, settings.redis.partitions, settings.events, self._timeout_s)
        self.holding = False
        self._started_at: Key | None = None
        # One client for every sender, made here, before serving: making one loads TLS certificates,
        # which holds the event loop (and every request in it) for tens of milliseconds.
        limits = httpx.Limits(max_connections=self._config.senders)
        self._http = httpx.AsyncClient(timeout=self._config.timeout_s, limits=limits)

    def _uri_key(self, account_id: str, ref: str) -> str:
        return self._keys.layout(("chf_notify_uri",), account_id, session_id=ref)[0]

    async def remember(self, account_id: str, ref: str, uri: str) -> None:
        """Keeps a create's notifyUri; a failure costs the session its notices, never its charge."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._client.set(self._uri_key(account_id, ref), uri, ex=self._config.uri_retention_s)
        except (TimeoutError, RedisError, OSError) as error:
            log.warning("notifyUri of %s not kept (no notices for it): %s", ref, error or "time-out")

    async def prepare(self) -> None:
        """Notes the feed's position before this process serves: with no position stored for the
        gateway, following starts there, so no session this process created misses a notice."""
        self._started_at = await self._feed.now_position()

    async def run(self, stopping: asyncio.Event) -> None:
        senders = [asyncio.create_task(self._send_loop(stopping)) for _ in range(self._config.senders)]
        try:
            while not stopping.is_set():
                if await self._claim():
                    await self._follow_while_held(stopping)
                await wait_or_stop(stopping, self._config.lease_s / 3)
        finally:
            for sender in senders:
                sender.cancel()
            for sender in senders:
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            await self._http.aclose()

    async def _claim(self) -> bool:
        command = self._calls.claim_partition(LEASE_PARTITION, self._owner, int(self._config.lease_s * 1000), ROLE)
        try:
            held = (await self._functions.call(command)).body == b"1"
        except CreditdError as error:
            log.warning("chf notification lease: %s", error.message)
            held = False
        if held != self.holding:
            log.info("chf notifications %s", "sent by this process" if held else "left to another process")
        self.holding = held
        return held

    async def _follow_while_held(self, stopping: asyncio.Event) -> None:
        lost = asyncio.Event()

        async def renew() -> None:
            while not stopping.is_set() and not lost.is_set():
                await wait_or_stop(stopping, self._config.lease_s / 3)
                if stopping.is_set() or not await self._claim():
                    lost.set()

        renewing = asyncio.create_task(renew())
        position_key = gateway_position(self._settings.chf.gateway_id)
        try:
            stored = await self._client.get(position_key)
            after = self._feed_position(stored) or self._started_at
            async for event in self._feed.follow(after, lost):
                self._queue_notice(event)
                await self._client.set(position_key, event.id)
        except (CreditdError, RedisError, OSError, TimeoutError) as error:
            log.warning("chf notifications: the event feed failed, following again: %s", error)
        finally:
            lost.set()
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    def _feed_position(self, stored: object) -> Key | None:
        if not stored:
            return None
        text = stored.decode() if isinstance(stored, bytes) else str(stored)
        try:
            return parse_position(text, self._settings.redis.partitions)
        except CreditdError:
            log.warning("chf notifications: stored position %r unreadable, following from now", text)
            return None

    def _queue_notice(self, event: FeedEvent) -> None:
        fields = event.fields
        kind = NOTIFICATION_TYPES.get(fields.get("kind", ""))
        if kind is None or fields.get("gateway_id") != self._settings.chf.gateway_id:
            return
        try:
            self._queue.put_nowait(Notice(fields["account_id"], fields["session_id"], kind))
        except asyncio.QueueFull:
            metrics.CHF_NOTIFICATIONS.labels(kind, "dropped").inc()
            log.error(
                "chf notifications: queue full (%d), %s for %s dropped", self._queue.maxsize, kind, fields["session_id"]
            )

    async def _send_loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            notice = await self._queue.get()
            await self._send(self._http, notice, stopping)

    async def _send(self, client: httpx.AsyncClient, notice: Notice, stopping: asyncio.Event) -> None:
        kind = notice.notification_type
        try:
            async with asyncio.timeout(self._timeout_s):
                uri = await self._client.get(self._uri_key(notice.account_id, notice.ref))
        except (TimeoutError, RedisError, OSError):
            uri = None
        if not uri:
            metrics.CHF_NOTIFICATIONS.labels(kind, "no_uri").inc()
            return
        target = uri.decode() if isinstance(uri, bytes) else str(uri)
        body = {"notificationType": kind}
        for attempt in range(1, self._config.attempts + 1):
            try:
                answer = await client.post(target, json=body)
                if answer.status_code < 500:
                    metrics.CHF_NOTIFICATIONS.labels(kind, "sent").inc()
                    if answer.status_code >= 400:
                        log.warning("chf notification %s to %s refused: %d", kind, target, answer.status_code)
                    return
                reason = f"HTTP {answer.status_code}"
            except httpx.HTTPError as error:
                reason = f"{type(error).__name__}: {error}"
            if attempt < self._config.attempts:
                metrics.CHF_NOTIFICATIONS.labels(kind, "retried").inc()
                await wait_or_stop(stopping, self._config.backoff_s * 2 ** (attempt - 1))
        metrics.CHF_NOTIFICATIONS.labels(kind, "failed").inc()
        log.error(
            "chf notification %s for %s to %s failed %d times: %s",
            kind,
            notice.ref,
            target,
            self._config.attempts,
            reason,
        )
