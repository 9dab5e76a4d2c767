"""Server lifecycle: Redis connection and library, the gRPC server with health and reflection, and a
graceful stop that drains in-flight requests."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from pathlib import Path

import grpc
import msgspec
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from creditd.api.auth import Authorizer
from creditd.api.client_limits import ClientLimits
from creditd.api.handlers import generic_handlers_only, service_handler
from creditd.api.health import RedisHealth
from creditd.api.metrics_endpoint import MetricsEndpoint
from creditd.api.reflection import add_guarded_reflection
from creditd.api.self_service import SelfServiceServicer
from creditd.api.servicers import AccountsService, CreditControlService
from creditd.api.streams import Watchers
from creditd.clock import Clock
from creditd.config.settings import SecuritySettings, Settings
from creditd.core.accounts import Accounts
from creditd.core.charging import Charging
from creditd.core.feed import EventFeed
from creditd.core.groups import Groups
from creditd.core.self_service import SelfService
from creditd.core.sweeper import Sweeper
from creditd.core.usage import usage_feed
from creditd.core.voucher_claims import voucher_claims
from creditd.errors import ConfigError, StartupError
from creditd.store.calls import Calls
from creditd.store.circuit import Circuit
from creditd.store.connection import AnyRedis, redact
from creditd.store.functions import Functions
from creditd.store.library import ensure_library, render_library
from creditd.store.opened import open_store
from creditd.store.pipeline import AutoPipeline
from creditd.v1 import creditd_pb2 as pb
from creditd.v1 import creditd_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAMES = tuple(
    pb.DESCRIPTOR.services_by_name[name].full_name for name in ("CreditControl", "Accounts", "SelfService")
)


def is_loopback_only(host: str) -> bool:
    """Whether every address host resolves to is a loopback one (a name that does not resolve is not:
    '127.0.0.1.invalid' would otherwise pass a look at its first characters and be resolved later)."""
    try:
        resolved = socket.getaddrinfo(host.strip("[]"), None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0] for info in resolved}
    return bool(addresses) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses)


# What stopping may spend after the drain: background loops, the pipeline and the Redis connection
# each get at most this long, so that a frozen Redis cannot hold a stopping process.
CLOSE_TIMEOUT_S = 0.5
PEM_MARKER = b"-----BEGIN "


def _read_tls_file(path: str, what: str) -> bytes:
    """A PEM file's bytes; grpc itself only fails later, with no name, on a file that is not PEM."""
    try:
        content = Path(path).read_bytes()
    except OSError as error:
        raise StartupError(f"tls: cannot read the {what} {path}: {error.strerror}") from None
    if PEM_MARKER not in content:
        raise StartupError(f"tls: the {what} {path} is not a PEM file")
    return content


def bind(server: grpc.aio.Server, listen: str, security: SecuritySettings) -> int:
    """Mutual TLS when configured; plaintext only on loopback, for development."""
    if security.tls:
        credentials = grpc.ssl_server_credentials(
            [(_read_tls_file(security.tls_key_path, "key"), _read_tls_file(security.tls_cert_path, "certificate"))],
            root_certificates=_read_tls_file(security.tls_client_ca_path, "client CA"),
            require_client_auth=True,
        )
        return server.add_secure_port(listen, credentials)
    host = listen.rsplit(":", 1)[0]
    if not is_loopback_only(host):
        raise ConfigError(
            f"listen: plaintext gRPC is for loopback only; {listen} needs --tls-cert, --tls-key and --tls-client-ca"
        )
    log.warning("plaintext gRPC on %s: development only, every caller is admin", listen)
    return server.add_insecure_port(listen)


class CreditdServer:
    def __init__(self, settings: Settings, redis_url: str, listen: str, clock: Clock | None = None) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.listen = listen
        self.clock = clock or Clock()
        self.port = 0
        self._redis: AnyRedis | None = None
        self._pipeline: AutoPipeline | None = None
        self._functions: Functions | None = None
        self._grpc: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._stopping = asyncio.Event()
        self._stopped = False
        self._background: list[asyncio.Task[None]] = []
        self.sweeper: Sweeper | None = None
        self.metrics: MetricsEndpoint | None = None
        self.circuit = Circuit()

    async def start(self) -> int:
        """Connects to Redis, loads the function library and starts serving; returns the bound port.
        A failure on the way (or a cancellation: a signal during start-up) stops whatever had started
        before it is raised, so that nothing is left listening or running."""
        try:
            return await self._start()
        except BaseException:
            await self.stop(0)
            raise

    async def _start(self) -> int:
        library_source = await self._connect()
        self._grpc = self._build_grpc_server()
        try:
            self.port = bind(self._grpc, self.listen, self.settings.security)
        except RuntimeError as error:
            raise StartupError(f"listen: gRPC port {self.listen} cannot be bound (in use?): {error}") from None
        if self.settings.metrics.listen:
            self.metrics = MetricsEndpoint(self.settings.metrics.listen, self.redis_url, self.settings.redis)
            log.info("metrics on http://%s/metrics (port %d)", self.settings.metrics.listen, self.metrics.start())
        await self._grpc.start()
        self._start_background(library_source)
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        host = self.listen.rsplit(":", 1)[0]
        log.info("creditd listening on %s:%d (redis %s)", host, self.port, redact(self.redis_url))
        return self.port

    async def _connect(self) -> str:
        opened = await open_store(self.settings, self.redis_url, self.circuit)
        self._redis, self._pipeline, self._functions = opened.redis, opened.pipeline, opened.functions
        return opened.library_source

    def _build_grpc_server(self) -> grpc.aio.Server:
        settings = self.settings
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", settings.server.max_message_bytes),
                ("grpc.max_send_message_length", settings.server.max_message_bytes),
            ],
        )
        handlers = generic_handlers_only(server)
        calls = Calls(settings.redis.partitions)
        charging, accounts = Charging(calls, self.functions, self.clock), Accounts(calls, self.functions, self.clock)
        channels = frozenset(settings.metrics.channels)
        partitions, timeout_s = settings.redis.partitions, settings.redis.call_timeout_s
        feed = EventFeed(self.redis, partitions, settings.events, timeout_s)
        usage = usage_feed(self.redis, partitions, settings.events, timeout_s)
        watchers = Watchers(feed, usage, self.redis, partitions, settings.events.max_watchers, self._stopping)
        authorizer = Authorizer(settings.security.roles, settings.security.tls)
        limits = settings.limits
        client_limits = ClientLimits(
            limits.max_in_flight_per_client,
            limits.accounts_calls_per_client_s,
            limits.accounts_burst_per_client,
            limits.max_concurrent_rpcs,
        )
        credit_control = CreditControlService(charging, settings.limits, watchers, authorizer, client_limits)
        credit_control_service = pb.DESCRIPTOR.services_by_name["CreditControl"]
        handlers.add_generic_rpc_handlers(
            (service_handler(credit_control_service, credit_control, credit_control.ANSWERED_AS_BYTES),)
        )
        groups = Groups(calls, self.functions, self.clock)
        account_service = AccountsService(
            accounts, settings.limits, channels, watchers, authorizer, client_limits, groups
        )
        pb_grpc.add_AccountsServicer_to_server(account_service, handlers)
        self_service = SelfService(self.redis, self.functions, accounts, settings, self.clock)
        self_servicer = SelfServiceServicer(self_service, settings.limits, authorizer, client_limits)
        pb_grpc.add_SelfServiceServicer_to_server(self_servicer, handlers)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, handlers)
        reflection_names = (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)
        add_guarded_reflection(handlers, reflection_names, authorizer)
        return server

    def _start_background(self, library_source: str) -> None:
        settings = self.settings
        self.sweeper = Sweeper(
            self.functions,
            settings.redis.partitions,
            settings.sweeper,
            self.clock,
            group_transfer_completion_s=settings.limits.group_transfer_completion_s,
            vouchers=voucher_claims(self.redis, self.functions, settings, self.clock),
        )
        self.redis_health = RedisHealth(
            self.redis,
            self._health,
            SERVICE_NAMES,
            library_source,
            settings.redis.health_check_interval_s,
            settings.redis.call_timeout_s,
            self.circuit,
            self.clock,
            settings.redis.max_clock_skew_ms,
        )
        self._background.append(asyncio.create_task(self.redis_health.run(self._stopping), name="redis-health"))
        if settings.sweeper.enabled:
            self._background.append(asyncio.create_task(self.sweeper.run(self._stopping), name="sweeper"))

    async def stop(self, grace_s: float | None = None) -> None:
        """Stops taking requests, lets in-flight ones finish within the grace period, then closes:
        within the grace period plus a few CLOSE_TIMEOUT_S, even with Redis frozen."""
        if self._stopped:
            return
        self._stopped = True
        grace_s = self.settings.server.drain_timeout_s if grace_s is None else grace_s
        await self._health.enter_graceful_shutdown()
        self._stopping.set()  # ends the streams and the background loops; unary calls drain below
        if self._grpc is not None:
            await self._grpc.stop(grace_s)
        await _finish(self._background)
        if self.metrics is not None:
            self.metrics.stop()
        if self._pipeline is not None:
            await _finish([asyncio.ensure_future(self._pipeline.close())])
        if self._redis is not None:
            await _finish([asyncio.ensure_future(self._redis.aclose())])
        log.info("creditd stopped")

    async def reload_plans(self, loaded: Settings) -> None:
        """Takes the plans, tariffs, plan changes and rating tables (destinations with their prefix
        files read again, zones, timings) of a reloaded config; everything else needs a restart, so
        that the edge checks and the functions keep the same limits. The library is replaced
        atomically: no call is dropped, each runs wholly on the old or wholly on the new."""
        settings = msgspec.structs.replace(
            self.settings,
            plans=loaded.plans,
            plan_changes=loaded.plan_changes,
            destinations=loaded.destinations,
            zones=loaded.zones,
            timings=loaded.timings,
        )
        source = render_library(settings)
        await ensure_library(self.redis, source)
        self.redis_health.library_source = source
        self.settings = settings
        kept = (settings.limits, settings.sweeper, settings.events, settings.redis.partitions)
        if (loaded.limits, loaded.sweeper, loaded.events, loaded.redis.partitions) != kept:
            log.warning(
                "config reloaded: plans, tariffs, plan changes and rating tables only; other changes take effect "
                "at the next restart"
            )
        log.info(
            "config reloaded: %d plan(s), %d plan change(s), %d destination(s)",
            len(settings.plans),
            len(settings.plan_changes),
            len(settings.destinations),
        )

    @property
    def functions(self) -> Functions:
        assert self._functions is not None, "server not started"
        return self._functions

    @property
    def redis(self) -> AnyRedis:
        assert self._redis is not None, "server not started"
        return self._redis

    async def wait_for_termination(self) -> None:
        assert self._grpc is not None
        await self._grpc.wait_for_termination()


async def _finish(tasks: list[asyncio.Task[None]] | list[asyncio.Future[None]]) -> None:
    """Waits CLOSE_TIMEOUT_S for the tasks to end by themselves, then cancels what is left."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
    for task in pending:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
