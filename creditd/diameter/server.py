"""`creditd diameter`: the Diameter front's lifecycle. Its own Redis connection, auto-pipeline and
circuit (the same store layer the gRPC server uses), a TCP listener, one Connection per peer, a Redis
probe that closes the circuit again, and a graceful stop (answer what is in flight, then DPR).

Several front processes may serve one Redis: a session lives in Redis only, keyed by the client's
Origin-Host (the gateway id) and Session-Id, so any process can carry any of its requests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.exceptions import RedisError

from creditd import metrics as shared_metrics
from creditd.clock import Clock, wait_or_stop
from creditd.config.settings import Settings
from creditd.core.accounts import Accounts
from creditd.core.charging import Charging
from creditd.core.feed import EventFeed
from creditd.diameter import metrics
from creditd.diameter.codec import DiameterError, Message
from creditd.diameter.credit import Ask, ask, balance_answer, credit_answer, is_balance_check, refusal
from creditd.diameter.dictionary import Result
from creditd.diameter.notices import forward_notices
from creditd.diameter.peer import Connection
from creditd.diameter.tls import allowed, identities, server_context
from creditd.errors import CreditdError, NotFound, StartupError, Unavailable
from creditd.store.calls import Calls
from creditd.store.circuit import Circuit
from creditd.store.connection import AnyRedis, redact
from creditd.store.opened import open_store
from creditd.store.pipeline import AutoPipeline

log = logging.getLogger(__name__)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class DiameterServer:
    def __init__(self, settings: Settings, redis_url: str, listen: str, clock: Clock | None = None) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.listen = listen
        self.clock = clock or Clock()
        self.port = 0
        self.tls_port = 0
        self.circuit = Circuit()
        self.redis_up = True
        self.origin_state_id = int(time.time()) & 0xFFFFFFFF
        self.connections: set[Connection] = set()
        self._redis: AnyRedis | None = None
        self._pipeline: AutoPipeline | None = None
        self._charging: Charging | None = None
        self._accounts: Accounts | None = None
        self._listener: asyncio.Server | None = None
        self._tls_listener: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._probe: asyncio.Task[None] | None = None
        self._notices: asyncio.Task[None] | None = None

    async def start(self) -> int:
        await self._connect()
        host, _, port = self.listen.rpartition(":")
        try:
            self._listener = await asyncio.start_server(self._accept, host.strip("[]"), int(port))
        except (OSError, ValueError) as error:
            raise StartupError(f"diameter.listen: cannot listen on {self.listen}: {error}") from None
        self.port = self._listener.sockets[0].getsockname()[1]
        if host.strip("[]") not in LOOPBACK_HOSTS and not host.startswith("127."):
            log.warning("plaintext Diameter on %s: a CER's Origin-Host is only as trustworthy as the network", host)
        if self.settings.diameter.tls_listen:
            self.tls_port = await self._listen_tls(self.settings.diameter.tls_listen)
        self._probe = asyncio.create_task(self._probe_redis(), name="diameter-redis-probe")
        assert self._redis is not None
        redis_settings = self.settings.redis
        feed = EventFeed(self._redis, redis_settings.partitions, self.settings.events, redis_settings.call_timeout_s)
        peers = frozenset(peer.origin_host for peer in self.settings.diameter.peers)
        self._notices = asyncio.create_task(
            forward_notices(feed, peers, lambda: list(self.connections), self._stopping), name="diameter-notices"
        )
        log.info("creditd diameter on %s:%d (redis %s)", host, self.port, redact(self.redis_url))
        return self.port

    async def _listen_tls(self, listen: str) -> int:
        context = server_context(self.settings.security)
        host, _, port = listen.rpartition(":")
        try:
            self._tls_listener = await asyncio.start_server(
                self._accept_tls, host.strip("[]"), int(port), ssl=context, ssl_handshake_timeout=10
            )
        except (OSError, ValueError) as error:
            raise StartupError(f"diameter.tls_listen: cannot listen on {listen}: {error}") from None
        tls_port: int = self._tls_listener.sockets[0].getsockname()[1]
        log.info("creditd diameter over TLS on %s:%d", host, tls_port)
        return tls_port

    async def _accept_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        names = identities(writer.get_extra_info("peercert"))
        if not allowed(names, self.settings.security):
            log.warning("diameter TLS: certificate %s holds no gateway role: closed", sorted(names))
            metrics.CLOSED.labels("certificate_role").inc()
            writer.transport.abort()
            return
        await self._accept(reader, writer, names)

    async def _connect(self) -> None:
        opened = await open_store(self.settings, self.redis_url, self.circuit)
        self._redis, self._pipeline = opened.redis, opened.pipeline
        calls = Calls(self.settings.redis.partitions)
        self._charging = Charging(calls, opened.functions, self.clock)
        self._accounts = Accounts(calls, opened.functions, self.clock)

    async def _probe_redis(self) -> None:
        """The circuit's probe: a PING answered within call_timeout_s closes it, none opens it."""
        redis_settings = self.settings.redis
        assert self._redis is not None
        while not self._stopping.is_set():
            try:
                async with asyncio.timeout(redis_settings.call_timeout_s):
                    await self._redis.ping()
                self.circuit.close()
                self.redis_up = True
                shared_metrics.REDIS_UP.set(1)
            except (TimeoutError, RedisError, OSError) as error:
                if self.redis_up:
                    log.error("redis unreachable: answering DIAMETER_TOO_BUSY: %s", error or "no answer")
                self.redis_up = False
                shared_metrics.REDIS_UP.set(0)
                self.circuit.trip(f"redis gave the diameter probe no answer: {error or 'timeout'}")
            await wait_or_stop(self._stopping, redis_settings.health_check_interval_s)

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, names: frozenset[str] | None = None
    ) -> None:
        if self._stopping.is_set() or len(self.connections) >= self.settings.diameter.max_connections:
            log.warning("diameter: connection refused (%s)", "stopping" if self._stopping.is_set() else "too many")
            writer.transport.abort()
            return
        settings = self.settings.diameter
        connection = Connection(reader, writer, settings, self.origin_state_id, self.credit_control, names)
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)

    async def credit_control(self, request: Message, gateway_id: str) -> Message:
        """A CCR's answer: the core's, or a refusal (its fields, or 3004 while Redis is away)."""
        assert self._charging is not None, "server not started"
        settings = self.settings.diameter
        try:
            checked = ask(request, gateway_id, settings, self.settings.limits)
        except DiameterError as error:
            return refusal(request, settings, error)
        if is_balance_check(request):
            return await self._check_balance(request, checked)
        try:
            outcome = await self._charging.charge(checked.charge)
        except Unavailable as error:
            return refusal(request, settings, DiameterError(Result.TOO_BUSY, f"redis unavailable: {error.message}"))
        except CreditdError as error:
            log.error("CCR %s/%d failed: %s", checked.charge.session_id, checked.request_number, error)
            return refusal(request, settings, DiameterError(Result.UNABLE_TO_COMPLY, error.message))
        return credit_answer(request, checked, outcome.answer, settings)

    async def _check_balance(self, request: Message, checked: Ask) -> Message:
        assert self._accounts is not None, "server not started"
        settings = self.settings.diameter
        try:
            account = await self._accounts.get(checked.charge.account_id)
        except NotFound:
            return refusal(request, settings, DiameterError(Result.USER_UNKNOWN, "no such account"))
        except Unavailable as error:
            return refusal(request, settings, DiameterError(Result.TOO_BUSY, f"redis unavailable: {error.message}"))
        return balance_answer(request, checked, account, settings)

    async def stop(self, grace_s: float | None = None) -> None:
        """Stops accepting, answers what is in flight within the grace period, sends DPR, closes."""
        grace_s = self.settings.diameter.drain_timeout_s if grace_s is None else grace_s
        self._stopping.set()
        for listener in (self._listener, self._tls_listener):
            if listener is not None:
                listener.close()
        await asyncio.gather(*(connection.drain(grace_s) for connection in list(self.connections)))
        if self._listener is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listener.wait_closed(), 5)
        for task in (self._probe, self._notices):
            if task is not None:
                await task
        if self._pipeline is not None:
            await self._pipeline.close()
        if self._redis is not None:
            await self._redis.aclose()
        log.info("creditd diameter stopped")
