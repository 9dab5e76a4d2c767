"""Connecting to Redis (one server, Sentinel or Cluster) and checking it is fit to hold money:
reachable, no eviction, AOF on — on every primary.

One client object serves all three topologies: redis.asyncio.Redis for a single server or a Sentinel
primary (its pool asks the sentinels again after a connection fails), FunctionCluster for a cluster
(slot map, per-node connections and pipelines, MOVED/ASK/TRYAGAIN followed a bounded number of times).
The synchronous twins serve the CLI, the auditor and the metrics scrape.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from typing import Any, cast

import redis
import redis.asyncio as redis_asyncio
import redis.asyncio.cluster as async_cluster
import redis.cluster as sync_cluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry
from redis.sentinel import Sentinel as SyncSentinel

from creditd.config.settings import RedisSettings
from creditd.errors import ConfigError, Unavailable
from creditd.store.url import RedisTarget, parse_redis_url, redact
from creditd.store.wire import Address, WireClient

log = logging.getLogger(__name__)

RETRY_ATTEMPTS = 3
FUNCTION_COMMANDS = ("FCALL", "FCALL_RO")
AnyRedis = redis_asyncio.Redis | async_cluster.RedisCluster
AnySyncRedis = redis.Redis | sync_cluster.RedisCluster

__all__ = [
    "AnyRedis",
    "AnySyncRedis",
    "connect",
    "connect_sync",
    "check_fit_for_money",
    "redact",
    "primaries",
    "wire_client",
]


def function_call_slot(client: Any, command: Any, args: Sequence[Any]) -> int | None:
    """The slot of an FCALL's keys, read from the call itself. redis-py otherwise asks the server
    (COMMAND GETKEYS) once per call: a round trip each, most of a pipeline's time. None when the call
    has no keys or keys in several slots: redis-py then routes it or raises its own error."""
    if str(command).upper() not in FUNCTION_COMMANDS or len(args) < 2:
        return None
    keys = args[2 : 2 + int(args[1])]
    slots = {client.keyslot(key) for key in keys}
    return slots.pop() if len(slots) == 1 else None


class FunctionCluster(async_cluster.RedisCluster):
    async def _determine_slot(self, command: str, *args: Any) -> int:
        slot = function_call_slot(self, command, args)
        return slot if slot is not None else await super()._determine_slot(command, *args)


class SyncFunctionCluster(sync_cluster.RedisCluster):
    def determine_slot(self, *args: Any) -> int | None:
        slot = function_call_slot(self, args[0], args[1:])
        return slot if slot is not None else super().determine_slot(*args)


def _tls_files(target: RedisTarget, settings: RedisSettings) -> dict[str, Any]:
    if not target.tls:
        return {}
    files = {
        "ssl_ca_certs": settings.tls_ca_path or None,
        "ssl_certfile": settings.tls_cert_path or None,
        "ssl_keyfile": settings.tls_key_path or None,
    }
    return {name: value for name, value in files.items() if value}


def _node_options(target: RedisTarget, settings: RedisSettings) -> dict[str, Any]:
    """Credentials, time-outs and TLS of a data node connection (Sentinel and Cluster)."""
    options: dict[str, Any] = {
        "username": target.username,
        "password": target.password,
        "socket_timeout": settings.call_timeout_s,
        "socket_connect_timeout": settings.call_timeout_s,
    }
    if target.tls:
        options["ssl"] = True
    return options | _tls_files(target, settings)


def connect(url: str, settings: RedisSettings) -> AnyRedis:
    # Retries resend a call that may already have run: safe, because every function is idempotent.
    target = parse_redis_url(url)
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.02), RETRY_ATTEMPTS)
    retry_on: list[type[Exception]] = [RedisConnectionError, RedisTimeoutError]
    if target.kind == "cluster":
        client = FunctionCluster(
            startup_nodes=[async_cluster.ClusterNode(host, port) for host, port in target.nodes],
            max_connections=settings.max_connections,
            retry=retry,
            retry_on_error=retry_on,
            **_node_options(target, settings),
        )
        client.RedisClusterRequestTTL = settings.redirect_attempts
        return client
    if target.kind == "sentinel":
        sentinels = Sentinel(
            list(target.nodes),
            sentinel_kwargs={
                "socket_timeout": settings.call_timeout_s,
                "socket_connect_timeout": settings.call_timeout_s,
            },
            **_node_options(target, settings),
        )
        primary: redis_asyncio.Redis = sentinels.master_for(
            target.service_name,
            db=target.db,
            max_connections=settings.max_connections,
            retry=retry,
            retry_on_error=retry_on,
        )
        return primary
    pool = redis_asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=settings.max_connections,
        timeout=settings.call_timeout_s,
        socket_timeout=settings.call_timeout_s,
        socket_connect_timeout=settings.call_timeout_s,
        retry=retry,
        retry_on_error=retry_on,
        **_tls_files(target, settings),
    )
    return redis_asyncio.Redis(connection_pool=pool)


def _tls_context(settings: RedisSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.tls_ca_path or None)
    if settings.tls_cert_path:
        context.load_cert_chain(settings.tls_cert_path, settings.tls_key_path or None)
    return context


def wire_client(client: AnyRedis, url: str, settings: RedisSettings) -> WireClient | None:
    """The serving path's lean connection (store/wire.py) to the server `client` talks to: the one
    server, or the primary the sentinels name at each connection; None for a cluster, whose calls go
    through redis-py's cluster pipelines (slot map, redirections)."""
    if isinstance(client, async_cluster.RedisCluster):
        return None
    target = parse_redis_url(url)
    pool = client.connection_pool
    options = pool.connection_kwargs
    handshake: list[tuple[Any, ...]] = []
    if options.get("password"):
        user = (options["username"],) if options.get("username") else ()
        handshake.append(("AUTH", *user, options["password"]))
    if options.get("db"):
        handshake.append(("SELECT", options["db"]))

    async def address() -> Address:
        if target.kind == "sentinel":
            host, port = await pool.get_master_address()  # type: ignore[attr-defined]
            return ("tcp", host, int(port))
        if "path" in options:
            return ("unix", options["path"])
        return ("tcp", options["host"], int(options["port"]))

    tls = _tls_context(settings) if target.tls else None
    return WireClient(address, handshake, settings.call_timeout_s, tls)


def connect_sync(url: str, settings: RedisSettings, socket_timeout_s: float | None = None) -> AnySyncRedis:
    """The synchronous client of the same topology, for the CLI, the auditor and the scrape thread."""
    target = parse_redis_url(url)
    timeout_s = socket_timeout_s or settings.call_timeout_s
    options = _node_options(target, settings) | {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    retry = SyncRetry(ExponentialBackoff(cap=0.5, base=0.02), RETRY_ATTEMPTS)
    if target.kind == "cluster":
        client = SyncFunctionCluster(
            startup_nodes=[sync_cluster.ClusterNode(host, port) for host, port in target.nodes], retry=retry, **options
        )
        client.RedisClusterRequestTTL = settings.redirect_attempts
        return client
    if target.kind == "sentinel":
        sentinels = SyncSentinel(list(target.nodes), sentinel_kwargs={"socket_timeout": timeout_s}, **options)
        return cast(redis.Redis, sentinels.master_for(target.service_name, db=target.db, retry=retry))
    return redis.Redis.from_url(url, socket_timeout=timeout_s, retry=retry, **_tls_files(target, settings))


async def primaries(client: AnyRedis) -> list[Any]:
    """The nodes a command must reach to reach every account: the cluster's primaries, or the one
    server. Each is a `target_nodes` for execute_command (None: the client's own server)."""
    if isinstance(client, async_cluster.RedisCluster):
        await client.initialize()  # a no-op once the slot map is known; a fresh client has none
        return list(client.get_primaries())
    return [None]


async def on_every_primary(client: AnyRedis, *command: Any) -> list[Any]:
    """Runs one command on every primary; the replies in primaries() order."""
    nodes = await primaries(client)
    if nodes == [None]:
        return [await client.execute_command(*command)]
    return list(await asyncio.gather(*(client.execute_command(*command, target_nodes=node) for node in nodes)))


async def redis_time_ms(client: AnyRedis) -> int:
    """The earliest clock among the primaries, in ms: every write from now on, on any node, carries
    at least this time."""
    times = await on_every_primary(client, "TIME")
    return min(int(seconds) * 1000 + int(microseconds) // 1000 for seconds, microseconds in times)


def _config_value(reply: Any, name: str) -> str | None:
    value = reply.get(name) if isinstance(reply, dict) else None
    return value.decode() if isinstance(value, bytes) else value


async def check_waitaof(client: AnyRedis, replicas: int) -> None:
    """redis.durability = "fsync" needs WAITAOF (Redis 7.2, Valkey 8) and AOF on, on every primary:
    without them every answer would be UNAVAILABLE, so it is refused at start-up instead."""
    try:
        await on_every_primary(client, "WAITAOF", 0, 0, 1)
        await on_every_primary(client, "WAITAOF", 1, 0, 1)
    except ResponseError as error:
        raise ConfigError(
            f"redis.durability: 'fsync' needs WAITAOF and appendonly yes on every primary ({error})"
        ) from None
    if replicas:
        log.info("durability: each answer waits for its writes fsynced here and on %d replica(s)", replicas)
    await _warn_unless_appendfsync_always(client)


async def _warn_unless_appendfsync_always(client: AnyRedis) -> None:
    """With appendfsync everysec (or no) WAITAOF waits for the next once-a-second background fsync,
    so every answer does: docs/operating.md gives what that cost in the load test."""
    try:
        replies = await on_every_primary(client, "CONFIG GET", "appendfsync")
    except ResponseError:
        return  # CONFIG refused: check_fit_for_money already warned that it could not be read
    for policy in {_config_value(reply, "appendfsync") for reply in replies} - {"always"}:
        log.warning(
            "redis: appendfsync is %r: with durability 'fsync' each answer waits for the next background "
            "fsync (up to a second); appendfsync always answers as soon as its writes are fsynced",
            policy,
        )


async def check_fit_for_money(client: AnyRedis, url: str) -> None:
    """Refuses a Redis that may evict keys; warns when it does not persist writes. Every primary."""
    try:
        await on_every_primary(client, "PING")
    except (RedisError, OSError) as error:
        raise Unavailable(f"redis: cannot reach {redact(url)}: {error}") from None
    try:
        policies = await on_every_primary(client, "CONFIG GET", "maxmemory-policy")
        appendonly = await on_every_primary(client, "CONFIG GET", "appendonly")
    except ResponseError as error:
        log.warning("redis: cannot read CONFIG (%s); make sure maxmemory-policy is noeviction and AOF is on", error)
        return
    for policy in (_config_value(reply, "maxmemory-policy") for reply in policies):
        if policy != "noeviction":
            raise ConfigError(
                f"redis: maxmemory-policy is {policy!r}; creditd needs 'noeviction' (evicted keys are lost money)"
            )
    if any(_config_value(reply, "appendonly") != "yes" for reply in appendonly):
        log.warning("redis: AOF is OFF at %s: acknowledged top-ups and charges can be lost on a restart", redact(url))
